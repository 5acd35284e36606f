/**
 * The benchmarks' reading of the machine's CPU (/proc/stat): the share
 * busy between two readings follows work done in between.
 */
import test from 'ava';
import { availableParallelism } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import { busyShare, machineCpu } from '../../bench/lib/system.js';

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy on purpose
  }
}

test('a core kept busy shows in the machine share; the share stays within 0 and 1', async (t) => {
  const before = await machineCpu();
  t.true(before.busy > 0 && before.busy < before.total);
  spin(300);
  const after = await machineCpu();
  const share = busyShare(before, after);
  // This process alone kept one of the machine's cores busy the whole time.
  t.true(share >= 0.9 / availableParallelism() && share <= 1, `share ${share}`);
});

test('readings with no time between them give a share of 0, not a division by zero', async (t) => {
  const reading = await machineCpu();
  t.is(busyShare(reading, reading), 0);
  await delay(20);
  const later = await machineCpu();
  t.true(later.total >= reading.total && later.busy >= reading.busy);
});
