/**
 * Every scenario of the suite, in the order they run.
 */
import type { Scenario } from '../scenario.js';
import { aligned, firstStart, unaligned } from './basic.js';
import { decline, oversizedAck, staleEpochsAndTerms } from './control.js';
import { alignedTimeout, flowControl } from './flow.js';
import { hungTask, leaderFailover, lostRecords, restoreChosen, sigkillRestart } from './faults.js';
import { recoverThenRestore, restoreThenRecover, triggerBeforeStart } from './ordering.js';
import { unalignedFromAlignedSavepoint } from './savepoint.js';

export const SCENARIOS: readonly Scenario[] = [
  firstStart,
  aligned,
  unaligned,
  lostRecords,
  triggerBeforeStart,
  recoverThenRestore,
  restoreThenRecover,
  staleEpochsAndTerms,
  leaderFailover,
  sigkillRestart,
  restoreChosen,
  decline,
  hungTask,
  oversizedAck,
  flowControl,
  alignedTimeout,
  unalignedFromAlignedSavepoint,
];
