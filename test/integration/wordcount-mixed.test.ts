/**
 * The word count across languages: its split tasks in the Go worker
 * (go/src/ckpt/examples/wordcount-split), its count and sink tasks in
 * TypeScript workers. The Go worker is SIGKILLed while input flows and
 * restarted; the output must still be exactly once, and every record the
 * Go splits send must go to the TypeScript count task owning its key.
 * A second run has the sink in Go as well (its exactly-once JetStream
 * sink), and SIGKILLs both Go workers. Real etcd, NATS, coordinator and
 * worker processes.
 */
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { GO_TS_WORKERS, type WorkerPlan } from '../../examples/wordcount/job.js';
import { runWordCount } from '../../examples/wordcount/run.js';

function hasGo(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const goWorker = GO_TS_WORKERS.findIndex((w) => w.lang === 'go');

// Without Go (make system-deps installs it) the mixed-language word count cannot run.
const withGo = hasGo() ? test.serial : test.serial.skip;

withGo('the word count with Go split tasks is exactly-once when the Go worker is SIGKILLed mid-run', async (t) => {
  // The first build of the Go worker compiles gRPC and NATS: minutes on a busy machine.
  t.timeout(400_000);
  const r = await runWordCount({
    sentences: 4000,
    feedMs: 3000,
    intervalMs: 300,
    settleTimeoutMs: 90_000,
    workers: GO_TS_WORKERS,
    kills: [{ at: 0.5, worker: goWorker }],
    log: (line) => t.log(line),
  });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kill caused a recovery');
  t.true(r.checkpoints >= 2);
  t.true(r.routedRecords >= r.verdict.updates, 'the partitioning of every split-count record was checked');
});

/** Splits and sink in Go workers, counts in TypeScript: records cross languages on both edges of the counts. */
const GO_SINK_WORKERS: readonly WorkerPlan[] = [
  { lang: 'go', tasks: ['split-0', 'split-1'] },
  { lang: 'ts', tasks: ['count-0', 'count-1'] },
  { lang: 'go', tasks: ['sink'] },
];

withGo('the word count with its sink in Go is exactly-once when both Go workers are SIGKILLed mid-run', async (t) => {
  t.timeout(400_000);
  const r = await runWordCount({
    sentences: 4000,
    feedMs: 3000,
    intervalMs: 300,
    settleTimeoutMs: 90_000,
    workers: GO_SINK_WORKERS,
    kills: [
      { at: 0.3, worker: 2 },
      { at: 0.65, worker: 0 },
    ],
    log: (line) => t.log(line),
  });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kills caused recoveries (two kills close together may share one)');
  t.is(r.recoveryMs.length, 2);
});
