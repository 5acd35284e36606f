/**
 * Every scenario of the suite, in the order they run.
 */
import type { Scenario } from '../scenario.js';
import { aligned, firstStart, unaligned } from './basic.js';
import { recoverThenRestore, restoreThenRecover, triggerBeforeStart } from './ordering.js';

export const SCENARIOS: readonly Scenario[] = [
  firstStart,
  aligned,
  unaligned,
  triggerBeforeStart,
  recoverThenRestore,
  restoreThenRecover,
];
