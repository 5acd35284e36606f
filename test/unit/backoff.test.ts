/**
 * The one backoff and the delays built on it: the periodic trigger's
 * retries, the recoveries in a row, and the election's watches.
 */
import test from 'ava';
import { backoffDelayMs, periodicTriggerRetryMs, resolveBackoff } from '../../src/core/backoff.js';
import { RESTART_BACKOFF_RESET_MS, RestartBackoff, restartDelayMs } from '../../src/coordinator/restart-backoff.js';
import { silentLogger } from '../../src/log/index.js';
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

test('recoveries in a row wait none, then 250 ms doubling to 4 s, ±20 %; election watches 100 ms doubling to 1 s', (t) => {
  const middle = (): number => 0.5;
  t.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 10].map((n) => restartDelayMs(n, middle)),
    [0, 250, 500, 1000, 2000, 4000, 4000, 4000],
  );
  t.deepEqual(
    [1, 5].map((n) => restartDelayMs(n, () => 0)),
    [200, 3200],
    'jitter: 20 % less at the least',
  );
  t.deepEqual(
    [1, 5].map((n) => restartDelayMs(n, () => 1)),
    [300, 4800],
    'jitter: 20 % more at the most',
  );
  const durations: number[] = [];
  let backoff = electionWatchBackoff();
  for (let i = 0; i < 6; i++) {
    durations.push(backoff.duration);
    backoff = backoff.next(undefined);
  }
  t.deepEqual(durations, [100, 200, 400, 800, 1000, 1000]);
});

/** Runs `backoff.wait()` and returns how long it waited, on the clock `clock` that the wait itself moves. */
async function waited(backoff: RestartBackoff, clock: { ms: number }): Promise<number> {
  const started = Date.now();
  await backoff.wait();
  const ms = Date.now() - started;
  clock.ms += ms;
  return ms;
}

test('restart backoff: recoveries in a row wait longer; a completed checkpoint or a quiet period starts over', async (t) => {
  const clock = { ms: 1_000_000 };
  const backoff = new RestartBackoff(
    () => clock.ms,
    silentLogger(),
    () => 0.5,
  );
  t.true((await waited(backoff, clock)) < 100, 'the first recovery goes ahead at once');
  clock.ms += 1000;
  t.true((await waited(backoff, clock)) >= 240, 'the second in a row waits 250 ms');
  clock.ms += 1000;
  t.true((await waited(backoff, clock)) >= 490, 'the third 500 ms');
  backoff.reset();
  clock.ms += 1000;
  t.true((await waited(backoff, clock)) < 100, 'after a completed checkpoint: at once');
  clock.ms += 1000;
  t.true((await waited(backoff, clock)) >= 240, 'then 250 ms again');
  clock.ms += RESTART_BACKOFF_RESET_MS;
  t.true((await waited(backoff, clock)) < 100, 'after a quiet period as long as the reset threshold: at once');
});

test('restart backoff: cancel ends a wait at once', async (t) => {
  const clock = { ms: 1_000_000 };
  const backoff = new RestartBackoff(
    () => clock.ms,
    silentLogger(),
    () => 0.5,
  );
  await backoff.wait();
  clock.ms += 100;
  const started = Date.now();
  const long = backoff.wait();
  backoff.cancel();
  await long;
  t.true(Date.now() - started < 200, 'a 250 ms wait cancelled at once');
});
