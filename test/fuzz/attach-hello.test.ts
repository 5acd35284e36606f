/**
 * Fuzzing the hello, heartbeat and ready messages of an Attach session,
 * as its first message, inside it and from a waiting standby, against a coordinator child (see runner.ts for the properties).
 */
import { fuzzSuite } from './suite.js';
import { targetGroup } from './targets.js';

fuzzSuite(targetGroup('attach-hello'));
