/**
 * `make demo`: the word count on a local etcd and NATS with three worker
 * processes, one of them SIGKILLed in the middle and restarted. The last
 * line says whether the sink's output equals the crash-free output.
 * With CKPT_WORKER_METRICS=127.0.0.1:0 every worker serves its metrics on
 * a free port of that host and prints the URL.
 *
 * `--langs go,ts` (`make demo LANGS=go,ts`) runs the split tasks in the Go
 * worker (go/src/ckpt/examples/wordcount-split) and the count and sink
 * tasks in TypeScript workers; the Go worker is the one SIGKILLed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { workersOfLangs, type WorkerPlan } from './job.js';
import { runWordCount } from './run.js';

/** Where the demo leaves the coordinator's metrics. */
const METRICS_FILE = '.tmp/demo/metrics.txt';

const started = Date.now();
const log = (line: string): void => {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
};

let workers: readonly WorkerPlan[];
try {
  workers = workersOfLangs(parseArgs({ options: { langs: { type: 'string' } } }).values.langs);
} catch (err) {
  console.log(`exactly-once: FAIL (${err instanceof Error ? err.message : String(err)})`);
  process.exit(2);
}
// The first Go worker if there is one: recovering it is what a mixed run shows.
const goWorker = workers.findIndex((w) => w.lang === 'go');

runWordCount({
  sentences: 20_000,
  feedMs: 8000,
  intervalMs: 1000,
  workers,
  kills: [{ at: 0.45, worker: goWorker >= 0 ? goWorker : 1 }],
  settleTimeoutMs: 60_000,
  ...(process.env.CKPT_WORKER_METRICS ? { workerMetrics: process.env.CKPT_WORKER_METRICS } : {}),
  log,
}).then(
  async (r) => {
    for (const p of r.verdict.problems) log(p);
    await mkdir(dirname(METRICS_FILE), { recursive: true });
    await writeFile(METRICS_FILE, r.metrics);
    log(`the coordinator's /metrics at the end of the run: ${METRICS_FILE}`);
    log(
      `recovery (SIGKILL to every task running again): ${r.recoveryMs.map((ms) => `${ms} ms`).join(', ') || 'none'}; run took ${(r.durationMs / 1000).toFixed(1)} s`,
    );
    const figures = `${r.records} records, ${r.checkpoints} checkpoints, ${r.recoveries} recoveries`;
    console.log(
      r.verdict.ok
        ? `exactly-once: OK (${figures})`
        : `exactly-once: FAIL (${figures}; ${r.verdict.problems.length} problems)`,
    );
    process.exitCode = r.verdict.ok ? 0 : 1;
  },
  (err: unknown) => {
    console.log(`exactly-once: FAIL (${err instanceof Error ? err.message : String(err)})`);
    process.exitCode = 1;
  },
);
