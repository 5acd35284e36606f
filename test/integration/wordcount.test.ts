/**
 * Invariant 5: the reference pipeline's output after crashes equals its
 * crash-free output. Real etcd, NATS, coordinator and three worker
 * processes; workers are SIGKILLed while input flows and restarted.
 */
import test from 'ava';
import { runWordCount } from '../../examples/wordcount/run.js';

const base = { sentences: 4000, feedMs: 3000, intervalMs: 300, settleTimeoutMs: 90_000 };

test.serial('the word count is exactly-once with one worker SIGKILLed mid-run', async (t) => {
  t.timeout(150_000);
  const r = await runWordCount({ ...base, kills: [{ at: 0.5, worker: 1 }], log: (line) => t.log(line) });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kill caused a recovery');
  t.true(r.checkpoints >= 2);
});

test.serial('the word count is exactly-once with two kills at different moments', async (t) => {
  t.timeout(150_000);
  const r = await runWordCount({
    ...base,
    kills: [
      { at: 0.25, worker: 0 },
      { at: 0.7, worker: 2 },
    ],
    log: (line) => t.log(line),
  });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kills caused recoveries (two kills close together may share one)');
  t.is(r.recoveryMs.length, 2);
});
