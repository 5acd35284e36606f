/**
 * Fuzzing every RPC of coordinator.proto and query.proto against a
 * coordinator child (see runner.ts for the properties).
 */
import { fuzzSuite } from './suite.js';
import { rpcTargets } from './targets.js';

fuzzSuite(rpcTargets());
