/**
 * Fuzzing GetJob and the CheckpointQuery service (ListJobs,
 * ListCheckpoints, GetCheckpoint, WatchCheckpoints, GetCheckpointStatistics), against a coordinator child (see runner.ts for the properties).
 */
import { fuzzSuite } from './suite.js';
import { targetGroup } from './targets.js';

fuzzSuite(targetGroup('rpc-queries'));
