/**
 * The one backoff and the delays built on it: the periodic trigger's
 * retries, the recoveries in a row, and the election's watches.
 */
import test from 'ava';
import { backoffDelayMs, periodicTriggerRetryMs, resolveBackoff } from '../../src/core/backoff.js';
import { restartDelayMs } from '../../src/coordinator/restart-backoff.js';
import { electionWatchBackoff } from '../../src/server/election.js';

test('without jitter the delays double from the first up to the largest, and no random number is drawn', (t) => {
  const config = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 0 });
  const never = (): number => {
    throw new Error('random was called');
  };
  t.deepEqual(
    [0, 1, 2, 3, 4, 50].map((n) => backoffDelayMs(config, n, never)),
    [100, 200, 400, 800, 1000, 1000],
  );
  t.is(backoffDelayMs(config, -3, never), 100, 'a negative attempt counts as the first');
});

test('a failed periodic trigger is retried after 100 ms, doubling up to the interval, at most 5 s', (t) => {
  t.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => periodicTriggerRetryMs(n, 60_000)),
    [100, 200, 400, 800, 1600, 3200, 5000, 5000],
  );
  t.deepEqual(
    [1, 2, 3, 4].map((n) => periodicTriggerRetryMs(n, 300)),
    [100, 200, 300, 300],
  );
  t.deepEqual(
    [1, 2].map((n) => periodicTriggerRetryMs(n, 10)),
    [100, 100],
    'never below 100 ms',
  );
});

test('recoveries in a row wait none, then 250 ms doubling to 10 s; election watches 100 ms doubling to 1 s', (t) => {
  t.deepEqual([0, 1, 2, 3, 4, 6, 7, 10].map(restartDelayMs), [0, 250, 500, 1000, 2000, 8000, 10_000, 10_000]);
  const durations: number[] = [];
  let backoff = electionWatchBackoff();
  for (let i = 0; i < 6; i++) {
    durations.push(backoff.duration);
    backoff = backoff.next(undefined);
  }
  t.deepEqual(durations, [100, 200, 400, 800, 1000, 1000]);
});
