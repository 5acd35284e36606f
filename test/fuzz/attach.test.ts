/**
 * Fuzzing every message type of an Attach session, as the first message,
 * inside a session and from a waiting standby, against a coordinator child
 * (see runner.ts for the properties).
 */
import { fuzzSuite } from './suite.js';
import { attachTargets } from './targets.js';

fuzzSuite(attachTargets());
