/**
 * Backpressure: checkpoints of a pipeline whose sink takes a tenth of what
 * its source produces, in aligned mode, in aligned mode with an alignment
 * timeout (`aligned-timeout`), and in unaligned mode. The three tasks of
 * bench/lib/backpressure-worker.ts (gen ─▶ relay ─▶ sink: 2000 records of
 * 2 KiB a second offered, 200 a second taken) run in three worker
 * processes (compiled, plain `node`); the data plane's credits slow the
 * source down to the sink's pace. A checkpoint is triggered every second;
 * the rows are the durations (trigger to commit) of the checkpoints
 * completed while the pipeline ran under backpressure, the records the
 * sink made visible per second, and the workers' largest resident memory.
 *
 * In aligned mode a barrier waits behind the records queued on each edge
 * of its path (at most a window of them, taken at the sink's pace); in
 * unaligned mode the tasks snapshot at the first barrier and store what is
 * queued as in-flight records, so the checkpoint does not wait for it. With
 * an alignment timeout (`aligned_checkpoint_timeout_ms`), an aligned
 * checkpoint that waited that long at a task is taken unaligned there, so
 * it takes about the timeout per task of its path instead of a window's
 * worth of records at the sink's pace.
 *
 *   make build && node --import tsx bench/backpressure.ts [--quick]
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { JobSpec } from '../src/index.js';
import { ManagedChild } from '../test/chaos/child.js';
import { COMPILED_NODE_ARGS } from './lib/compiled-child.js';
import { quantile } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { isMain, runStandalone } from './standalone.js';
import { startBenchStack, stopWorkers, type BenchStack, type LogEntry } from './wordcount-stack.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The pipeline's worker process, compiled (`make build`). */
const COMPILED_WORKER = join(REPO, 'dist', 'bench', 'lib', 'backpressure-worker.js');
const WORKER_SOURCE = join(REPO, 'bench', 'lib', 'backpressure-worker.ts');

const SOURCE_RATE = 2000;
const SINK_RATE = 200;
const PAYLOAD_BYTES = 2048;
const INTERVAL_MS = 1000;
/** Before this much time under backpressure, checkpoints are not counted (the queues fill). */
const WARMUP_MS = 5000;
const START_TIMEOUT_MS = 60_000;

type Mode = 'aligned' | 'aligned-timeout' | 'unaligned';
const MODES: readonly Mode[] = ['aligned', 'aligned-timeout', 'unaligned'];
/** The alignment timeout of the `aligned-timeout` mode: half the checkpoint interval. */
const ALIGNED_TIMEOUT_MS = 500;

/** How the scenario runs. */
export interface BackpressureOptions {
  /** How long each mode runs under backpressure, warm-up included. */
  runMs: number;
}

/** The full run: about two minutes and a half. */
export const DEFAULT_BACKPRESSURE_OPTIONS: BackpressureOptions = { runMs: 40_000 };
/** A smoke run. */
export const QUICK_BACKPRESSURE_OPTIONS: BackpressureOptions = { runMs: 15_000 };
/** A mode runs on past `runMs`, up to this much longer, until a checkpoint has completed after the warm-up. */
const MAX_EXTRA_MS = 60_000;

/** What one mode measured. */
interface ModeFigures {
  mode: Mode;
  checkpointMs: number[];
  sinkRecordsPerS: number;
  peakRssBytes: number;
}

/** The scenario with `options`. */
export function backpressureScenario(options: BackpressureOptions): Scenario {
  return async (ctx) => {
    await requireWorker();
    const stack = await startBenchStack(ctx, ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '5000']);
    const streams = MODES.map(streamOf);
    try {
      const figures: ModeFigures[] = [];
      for (const mode of MODES) figures.push(await runMode(stack, ctx, mode, options));
      return rows(figures, options);
    } finally {
      await stack.stop(streams);
    }
  };
}

/** The scenario as `make bench` runs it. */
export const backpressure: Scenario = (ctx) =>
  backpressureScenario(ctx.quick === true ? QUICK_BACKPRESSURE_OPTIONS : DEFAULT_BACKPRESSURE_OPTIONS)(ctx);

function streamOf(mode: Mode): string {
  return `BACKPRESSURE_${mode.toUpperCase().replace('-', '_')}`;
}

function spec(jobId: string, mode: Mode): JobSpec {
  return {
    jobId,
    tasks: [{ taskId: 'gen' }, { taskId: 'relay', inputs: ['gen'] }, { taskId: 'sink', inputs: ['relay'] }],
    policy: {
      intervalMs: INTERVAL_MS,
      timeoutMs: 120_000,
      retained: 2,
      tolerableFailures: -1,
      mode: mode === 'unaligned' ? 'CHECKPOINT_MODE_UNALIGNED' : 'CHECKPOINT_MODE_ALIGNED',
      alignedCheckpointTimeoutMs: mode === 'aligned-timeout' ? ALIGNED_TIMEOUT_MS : 0,
    },
  };
}

async function runMode(
  stack: BenchStack,
  ctx: ScenarioContext,
  mode: Mode,
  options: BackpressureOptions,
): Promise<ModeFigures> {
  const { coordinator } = stack;
  const jobId = `backpressure-${mode}`;
  const stream = streamOf(mode);
  await coordinator.client.submitJob({ spec: spec(jobId, mode) });
  const workers = ['gen', 'relay', 'sink'].map(
    (taskId) =>
      new ManagedChild({
        nodeArgs: COMPILED_NODE_ARGS,
        label: `backpressure-${taskId}`,
        args: () => [
          COMPILED_WORKER,
          ...['--coordinator', coordinator.address, '--nats', ctx.nats.join(','), '--job', jobId],
          ...[
            '--tasks',
            taskId,
            '--state-dir',
            stack.stateDir,
            '--stream',
            stream,
            '--subject',
            `${ctx.prefix}.bp.${mode}`,
          ],
          ...['--source-rate', String(SOURCE_RATE), '--sink-rate', String(SINK_RATE)],
          ...['--payload-bytes', String(PAYLOAD_BYTES)],
        ],
      }),
  );
  for (const w of workers) w.start();
  try {
    const isStart = (e: LogEntry): boolean => e.jobId === jobId && e.msg === 'every task ready: job started';
    const started = await coordinator.waitFor(isStart, START_TIMEOUT_MS, `job ${jobId} started`);
    const countFrom = started.time + WARMUP_MS;
    let peakRssBytes = 0;
    let visibleAtWarmup: number | undefined;
    const until = started.time + options.runMs;
    const counted = (): LogEntry[] =>
      coordinator.logged(jobId, 'checkpoint completed').filter((e) => e.time - (e.durationMs ?? 0) >= countFrom);
    while (Date.now() < until || (counted().length === 0 && Date.now() < until + MAX_EXTRA_MS)) {
      await new Promise((r) => setTimeout(r, 1000));
      for (const w of workers) peakRssBytes = Math.max(peakRssBytes, await rssOf(w.pid));
      if (visibleAtWarmup === undefined && Date.now() >= countFrom) {
        visibleAtWarmup = await visible(stack, stream);
      }
    }
    const visibleAtEnd = await visible(stack, stream);
    const endedAt = Date.now();
    if (coordinator.logged(jobId, 'job recovery started').length > 0) {
      throw new Error(`job ${jobId} recovered under backpressure`);
    }
    const checkpointMs = counted().map((e) => e.durationMs ?? 0);
    const sinkRecordsPerS = (visibleAtEnd - (visibleAtWarmup ?? 0)) / ((endedAt - countFrom) / 1000);
    const sorted = [...checkpointMs].sort((a, b) => a - b);
    if (sorted.length === 0) throw new Error(`job ${jobId}: no checkpoint completed under backpressure`);
    ctx.log(
      `${mode}: ${checkpointMs.length} checkpoints under backpressure, p50 ${quantile(sorted, 0.5)} ms, ` +
        `max ${sorted.at(-1)} ms; sink ${sinkRecordsPerS.toFixed(0)} records/s visible; ` +
        `largest worker ${(peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    return { mode, checkpointMs, sinkRecordsPerS, peakRssBytes };
  } finally {
    await coordinator.client.cancelJob({ jobId }).catch(() => undefined);
    await stopWorkers(workers);
  }
}

function rows(figures: readonly ModeFigures[], options: BackpressureOptions): Row[] {
  const setup =
    `gen ─▶ relay ─▶ sink in 3 worker processes (compiled, plain node), the source offering ${SOURCE_RATE} ` +
    `records/s of ${PAYLOAD_BYTES} bytes and the sink (the exactly-once JetStream sink) taking ${SINK_RATE}/s; ` +
    `flow control window 1024 records (the default); a checkpoint triggered every ${INTERVAL_MS} ms; ` +
    `${options.runMs / 1000} s per mode, the first ${WARMUP_MS / 1000} s not counted`;
  return figures.flatMap((f) => {
    const sorted = [...f.checkpointMs].sort((a, b) => a - b);
    const how =
      f.mode === 'aligned-timeout'
        ? `aligned mode with a ${ALIGNED_TIMEOUT_MS} ms alignment timeout`
        : `${f.mode} mode`;
    const what = `checkpoints completed under backpressure in ${how} (${sorted.length}), trigger to commit`;
    const row = (id: string, value: number, unit: string, conditions: string): Row => ({
      id: `backpressure.${f.mode}.${id}`,
      value,
      unit,
      target: null,
      ratio: null,
      met: null,
      conditions: `${conditions}; ${setup}`,
    });
    return [
      row('checkpoint_ms.p50', quantile(sorted, 0.5), 'ms', `median duration of the ${what}`),
      row('checkpoint_ms.max', sorted.at(-1) ?? 0, 'ms', `longest of the ${what}`),
      row('sink_records_per_s', Math.round(f.sinkRecordsPerS), 'records/s', 'records the sink made visible per second'),
      row(
        'peak_rss_mib',
        Math.round(f.peakRssBytes / 2 ** 20),
        'MiB',
        'largest resident memory of the 3 worker processes, sampled every second',
      ),
    ];
  });
}

/** Messages in `stream` now (0 before it exists). */
async function visible(stack: BenchStack, stream: string): Promise<number> {
  const jsm = await jetstreamManager(stack.nc);
  return jsm.streams.info(stream).then(
    (i) => i.state.messages,
    () => 0,
  );
}

/** Resident memory of process `pid`, in bytes (Linux /proc). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) * 1024;
}

/** Rejects, saying to run `make build`, when the compiled worker is missing or older than its source. */
async function requireWorker(): Promise<void> {
  const [source, output] = await Promise.all([stat(WORKER_SOURCE), stat(COMPILED_WORKER).catch(() => undefined)]);
  if (output === undefined || output.mtimeMs < source.mtimeMs) {
    throw new Error(`${COMPILED_WORKER} is missing or older than its source: run \`make build\` first`);
  }
}

if (isMain(import.meta.url)) await runStandalone('backpressure', backpressure);
