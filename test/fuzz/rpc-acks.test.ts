/**
 * Fuzzing AcknowledgeCheckpoint and DeclineCheckpoint, against a coordinator child (see runner.ts for the properties).
 */
import { fuzzSuite } from './suite.js';
import { targetGroup } from './targets.js';

fuzzSuite(targetGroup('rpc-acks'));
