/**
 * Scenario 4, data-plane overhead: the reference word count's records per
 * second with a checkpoint every 1 s and every 100 ms, against none
 * (policy `intervalMs` 0), and the coordinator's CPU time per checkpoint.
 *
 * Every run reads the same corpus, stored in JetStream before the first
 * run, from its first message, with the demo's three worker processes,
 * and is timed from the coordinator's "every task ready: job started" to
 * the moment the sink's last update is stored (the output stream's
 * `last_ts`) with every update visible. The sink publishes only what a
 * completed checkpoint covers, so once both sources have read all input a
 * checkpoint is triggered at every poll until the output is complete, in
 * every mode: the runs without checkpoints publish their whole output at
 * the end, and every run does the same work. That end is not overlapped
 * with the reading, as the interval modes' publications are, which favours
 * them; the rows' conditions also give each run's read phase alone.
 *
 * After each run, the job stays up with its workers idle for a short
 * window, in which the coordinator's CPU time is read: with the pipeline
 * idle, what remains is the cost of running a job and of its checkpoints.
 *
 *   node --import tsx bench/data-plane.ts [--quick]
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager } from '@nats-io/jetstream';
import { sentences, words } from '../examples/wordcount/corpus.js';
import { INPUT_STREAM, INPUT_SUBJECTS, OUTPUT_STREAM, WORKER_TASKS, wordCountSpec } from '../examples/wordcount/job.js';
import type { ManagedChild } from '../test/chaos/child.js';
import { median } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText, type SystemFacts } from './lib/system.js';
import { isMain, runStandalone } from './standalone.js';
import {
  deleteStream,
  preloadInput,
  processCpuMs,
  startBenchStack,
  startWorkers,
  stopWorkers,
  type BenchCoordinator,
  type BenchStack,
  type LogEntry,
} from './wordcount-stack.js';

/** How the scenario runs. */
export interface DataPlaneOptions {
  /** Sentences in the corpus every run reads. */
  sentences: number;
  /** Runs per mode; each round runs every mode once, in a rotated order. */
  rounds: number;
}

/** The full run's options: about 4 minutes on 2 cores. */
export const DEFAULT_DATA_PLANE_OPTIONS: DataPlaneOptions = { sentences: 25_000, rounds: 5 };
/** A smoke run's options (`ctx.quick`). */
export const QUICK_DATA_PLANE_OPTIONS: DataPlaneOptions = { sentences: 5_000, rounds: 1 };

/** A checkpoint policy compared, and the share of the baseline's throughput it must keep. */
interface Mode {
  id: 'none' | 'interval_1000ms' | 'interval_100ms';
  intervalMs: number;
  /** Target as a share of `none`; undefined for the baseline itself. */
  share?: number;
}

const MODES: readonly Mode[] = [
  { id: 'none', intervalMs: 0 },
  { id: 'interval_1000ms', intervalMs: 1000, share: 0.98 },
  { id: 'interval_100ms', intervalMs: 100, share: 0.9 },
];

/** How often a run's progress is looked at (and, once the input is read, a checkpoint triggered). */
const POLL_MS = 100;
/**
 * A worker process using at most this much CPU time in one poll is idle.
 * Whether the sources have read all input is asked of JetStream only then:
 * consumer info of a subject-filtered consumer costs nats-server 2.9 a scan
 * of the stream from the consumer's position, which polled all along took
 * most of a core from the pipeline.
 */
const IDLE_CPU_MS = 10;
/** How long the job stays up after a run, idle, for the coordinator's CPU time. */
const IDLE_WINDOW_MS = 2000;
/** Longest a run may take from its start to the whole output visible. */
const RUN_TIMEOUT_MS = 90_000;
/** Longest the workers may take to attach and restore. */
const START_TIMEOUT_MS = 60_000;

/** What one run measured. */
interface RunFigures {
  mode: Mode;
  /** The round the run belongs to (every mode runs once per round, back to back). */
  round: number;
  /** Job started to the whole output visible, in ms. */
  runMs: number;
  /** Job started to the sources seen to have read all input, in ms. */
  readMs: number;
  /** CPU time of the job's processes (workers, coordinator, NATS, etcd) from started to output complete, in ms. */
  cpuMs: number;
  /** Consumers the sources read the input with: 2, unless one was re-created. */
  consumers: number;
  /** Durations of the checkpoints completed during the run, in ms. */
  checkpointMs: number[];
  /** The idle window after the run: the coordinator's CPU time and the window, in ms, and checkpoints completed. */
  idle: { cpuMs: number; wallMs: number; checkpoints: number };
}

/** The corpus every run reads. */
interface Corpus {
  sentences: number;
  /** Updates the sink makes visible: one per word. */
  updates: number;
}

/** Scenario 4 with `options`. */
export function dataPlaneScenario(options: DataPlaneOptions): Scenario {
  return async (ctx) => {
    const stack = await startBenchStack(ctx, ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '3000']);
    try {
      const text = sentences(options.sentences);
      await preloadInput(stack.nc, text, [...INPUT_SUBJECTS]);
      const corpus = { sentences: text.length, updates: text.reduce((n, s) => n + words(s).length, 0) };
      ctx.log(`${corpus.sentences} sentences (${corpus.updates} words) stored in ${INPUT_STREAM}`);
      const runs: RunFigures[] = [];
      for (let round = 0; round < options.rounds; round++) {
        for (const mode of rotate(MODES, round)) runs.push(await timeRun(stack, ctx, corpus, mode, round));
      }
      return rows(runs, corpus, options, ctx.system);
    } finally {
      await stack.stop([INPUT_STREAM, OUTPUT_STREAM]);
    }
  };
}

/** Scenario 4 as `make bench` runs it: with the default options, or the quick ones for `ctx.quick`. */
export const dataPlane: Scenario = (ctx) =>
  dataPlaneScenario(ctx.quick === true ? QUICK_DATA_PLANE_OPTIONS : DEFAULT_DATA_PLANE_OPTIONS)(ctx);

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** One run of the word count in `mode`, on fresh workers and an empty output stream. */
async function timeRun(
  stack: BenchStack,
  ctx: ScenarioContext,
  corpus: Corpus,
  mode: Mode,
  round: number,
): Promise<RunFigures> {
  const { coordinator } = stack;
  const jobId = `dataplane-${mode.id}-${round}`;
  await deleteStream(stack.nc, OUTPUT_STREAM);
  await coordinator.client.submitJob({ spec: wordCountSpec(jobId, mode.intervalMs) });
  const workers = startWorkers({ coordinator, nats: ctx.nats, jobId, tasks: WORKER_TASKS, stateDir: stack.stateDir });
  try {
    const isStart = (e: LogEntry): boolean => e.jobId === jobId && e.msg === 'every task ready: job started';
    const started = await coordinator.waitFor(isStart, START_TIMEOUT_MS, `job ${jobId} started`);
    const cpu = jobCpu(ctx, coordinator, workers);
    const cpuBefore = await cpu();
    const sources = workers.filter((_, i) => WORKER_TASKS[i]?.some((t) => t.startsWith('split')));
    const { finishedAt, inputReadAt } = await awaitOutput(stack, jobId, corpus.updates, started.time, sources);
    const cpuAfter = await cpu();
    const cpuByProcess = cpuAfter.map((p, i) => ({ ...p, ms: p.ms - (cpuBefore[i]?.ms ?? 0) }));
    const cpuMs = cpuByProcess.reduce((n, p) => n + p.ms, 0);
    const consumers = (await inputConsumers(await jetstreamManager(stack.nc), started.time)).length;
    const checkpointMs = coordinator.logged(jobId, 'checkpoint completed').map((e) => e.durationMs ?? 0);
    const idle = await idleWindow(coordinator, jobId);
    if (coordinator.logged(jobId, 'job recovery started').length > 0)
      throw new Error(`job ${jobId} recovered during the run; its figures would not be comparable`);
    const [runMs, readMs] = [finishedAt - started.time, inputReadAt - started.time];
    const figures = { mode, round, runMs, readMs, cpuMs, consumers, checkpointMs, idle };
    ctx.log(
      `${mode.id} round ${round + 1}: ${Math.round(recordsPerS(figures, corpus))} records/s, ` +
        `${Math.round(recordsPerCpuS(figures, corpus))} records/CPU-s ` +
        `(${runMs} ms, ${cpuMs} ms CPU: ${cpuByProcess.map((p) => `${p.name} ${p.ms}`).join(', ')}; input read after ${readMs} ms by ${consumers} consumers, ${checkpointMs.length} checkpoints; ` +
        `idle: coordinator CPU ${idle.cpuMs} ms in ${idle.wallMs} ms, ${idle.checkpoints} checkpoints)`,
    );
    return figures;
  } finally {
    await coordinator.client.cancelJob({ jobId }).catch(() => undefined);
    await stopWorkers(workers);
  }
}

function recordsPerS(run: RunFigures, corpus: Corpus): number {
  return corpus.sentences / (run.runMs / 1000);
}

function recordsPerCpuS(run: RunFigures, corpus: Corpus): number {
  return corpus.sentences / (run.cpuMs / 1000);
}

/**
 * Reads the CPU time used so far by each of the job's processes: its
 * workers, the coordinator and, when their pids are known, nats-server and
 * etcd.
 */
function jobCpu(
  ctx: ScenarioContext,
  coordinator: BenchCoordinator,
  workers: readonly ManagedChild[],
): () => Promise<Array<{ name: string; ms: number }>> {
  const processes = [
    ...workers.map((w) => ({ name: w.spec.label, pid: w.pid })),
    ...(ctx.serverPids === undefined
      ? []
      : [
          { name: 'nats', pid: ctx.serverPids.nats },
          { name: 'etcd', pid: ctx.serverPids.etcd },
        ]),
  ];
  return async () => {
    const [coordinatorMs, ...times] = await Promise.all([
      coordinator.cpuMs(),
      ...processes.map((p) => processCpuMs(p.pid)),
    ]);
    return [
      { name: 'coordinator', ms: coordinatorMs ?? 0 },
      ...processes.map((p, i) => ({ name: p.name, ms: times[i] ?? 0 })),
    ];
  };
}

/**
 * Polls the output stream until all `wanted` updates are visible and
 * resolves with the time the last one was stored, and when the sources
 * were first seen to have read all input (their worker processes idle,
 * and their consumers, created since `sinceMs`, with nothing pending).
 * From then on, triggers a checkpoint at every poll; refusals (one
 * pending) do not matter.
 */
async function awaitOutput(
  stack: BenchStack,
  jobId: string,
  wanted: number,
  sinceMs: number,
  sources: readonly ManagedChild[],
): Promise<{ finishedAt: number; inputReadAt: number }> {
  const jsm = await jetstreamManager(stack.nc);
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  const idle = idleWatch(sources.map((w) => w.pid));
  let inputReadAt: number | undefined;
  for (;;) {
    const { state } = await jsm.streams.info(OUTPUT_STREAM);
    if (state.messages > wanted) throw new Error(`${state.messages} updates visible, ${wanted} expected`);
    if (state.messages === wanted)
      return { finishedAt: Date.parse(state.last_ts), inputReadAt: inputReadAt ?? Date.parse(state.last_ts) };
    if (Date.now() > deadline)
      throw new Error(`job ${jobId}: ${state.messages} of ${wanted} updates visible after ${RUN_TIMEOUT_MS} ms`);
    if (inputReadAt === undefined && (await idle()) && (await inputRead(jsm, sinceMs))) inputReadAt = Date.now();
    if (inputReadAt !== undefined) await stack.coordinator.client.triggerCheckpoint({ jobId }).catch(() => undefined);
    await delay(POLL_MS);
  }
}

/** A function that tells whether every process of `pids` used at most `IDLE_CPU_MS` of CPU time since its last call. */
function idleWatch(pids: readonly number[]): () => Promise<boolean> {
  let last: number[] = [];
  return async () => {
    const now = await Promise.all(pids.map((pid) => processCpuMs(pid)));
    const idle = last.length > 0 && now.every((ms, i) => ms - (last[i] ?? 0) <= IDLE_CPU_MS);
    last = now;
    return idle;
  };
}

/** True when, for each input subject, a consumer created since `sinceMs` has delivered everything. */
async function inputRead(jsm: JetStreamManager, sinceMs: number): Promise<boolean> {
  const consumers = await inputConsumers(jsm, sinceMs);
  return INPUT_SUBJECTS.every((subject) => consumers.some((c) => filterOf(c) === subject && c.num_pending === 0));
}

/**
 * The input stream's consumers created since `sinceMs`: one per source,
 * and one more each time nats.js re-created a source's ordered consumer
 * (after missed heartbeats, say), which nats-server 2.9 then serves from
 * inside the stream with its slow subject filter.
 */
async function inputConsumers(jsm: JetStreamManager, sinceMs: number): Promise<ConsumerInfo[]> {
  // The server's clock may lag a little behind the coordinator's log.
  const since = sinceMs - 1000;
  return (await jsm.consumers.list(INPUT_STREAM).next()).filter((c) => Date.parse(c.created) >= since);
}

function filterOf(consumer: ConsumerInfo): string | undefined {
  return consumer.config.filter_subject ?? consumer.config.filter_subjects?.[0];
}

/** Keeps the job up, idle, for `IDLE_WINDOW_MS` and reads the coordinator's CPU time over it. */
async function idleWindow(coordinator: BenchCoordinator, jobId: string): Promise<RunFigures['idle']> {
  const [cpuBefore, from] = [await coordinator.cpuMs(), Date.now()];
  await delay(IDLE_WINDOW_MS);
  const [cpuAfter, to] = [await coordinator.cpuMs(), Date.now()];
  const within = (e: { time: number }): boolean => e.time > from && e.time <= to;
  const checkpoints = coordinator.logged(jobId, 'checkpoint completed').filter(within).length;
  return { cpuMs: cpuAfter - cpuBefore, wallMs: to - from, checkpoints };
}

/** The scenario's rows: median records/s and records/CPU-s per mode, and the coordinator's CPU time per checkpoint. */
function rows(runs: readonly RunFigures[], corpus: Corpus, options: DataPlaneOptions, system: SystemFacts): Row[] {
  return [
    ...modeRows(
      runs,
      'records_per_s',
      'records/s',
      (r) => recordsPerS(r, corpus),
      throughputConditions(runs, corpus, options, system),
    ),
    ...modeRows(
      runs,
      'records_per_cpu_s',
      'records/CPU-s',
      (r) => recordsPerCpuS(r, corpus),
      efficiencyConditions(runs, corpus, options, system),
    ),
    cpuRow(runs),
  ];
}

/** One row per mode: the median of `figure` over its runs, held to its share of the runs without checkpoints. */
function modeRows(
  runs: readonly RunFigures[],
  name: string,
  unit: string,
  figure: (r: RunFigures) => number,
  conditions: string,
): Row[] {
  const medianOf = (mode: Mode): number => median(runs.filter((r) => r.mode === mode).map(figure));
  const none = medianOf(MODES[0] as Mode);
  return MODES.map((mode): Row => {
    const value = Math.round(medianOf(mode));
    const target = mode.share === undefined ? null : Math.round(mode.share * none);
    return {
      id: `dataplane.${name}.${mode.id}`,
      value,
      unit,
      target,
      ratio: mode.share === undefined ? null : round3(value / none),
      met: target === null ? null : value >= target,
      conditions,
    };
  });
}

/** Per round, each interval mode's figure over the same round's run without checkpoints: `a/b/…, c/d/…`. */
function pairedRatios(runs: readonly RunFigures[], figure: (r: RunFigures) => number): string {
  return MODES.slice(1)
    .map((mode) =>
      runs
        .filter((r) => r.mode === mode)
        .map((r) => {
          const none = runs.find((n) => n.mode === MODES[0] && n.round === r.round);
          return none === undefined ? '-' : (figure(r) / figure(none)).toFixed(3);
        })
        .join('/'),
    )
    .join(', ');
}

function efficiencyConditions(
  runs: readonly RunFigures[],
  corpus: Corpus,
  options: DataPlaneOptions,
  system: SystemFacts,
): string {
  const perMode = MODES.map((m) =>
    runs
      .filter((r) => r.mode === m)
      .map((r) => String(Math.round(recordsPerCpuS(r, corpus))))
      .join('/'),
  ).join(', ');
  return (
    `the same runs as the records/s rows, per CPU-second instead of per second: input sentences (${corpus.sentences}) ` +
    `divided by the CPU time (user + system, /proc/<pid>/stat, 10 ms ticks) that the 3 worker processes, the coordinator, ` +
    `nats-server and etcd used from the job's start to its whole output visible; all of them share the ${coresText(system)}, so on a ` +
    `CPU-bound machine this is the throughput per core, and it does not depend on whether a mode's publications overlap ` +
    `its reading (the benchmark's own polling of JetStream, every ${POLL_MS} ms, is in nats-server's share); ` +
    `median of ${options.rounds} runs per mode; records/CPU-s per run (none, 1000 ms, 100 ms): ${perMode}; ` +
    `within each round, against the run without checkpoints (1000 ms, 100 ms): ${pairedRatios(runs, (r) => recordsPerCpuS(r, corpus))}`
  );
}

function throughputConditions(
  runs: readonly RunFigures[],
  corpus: Corpus,
  options: DataPlaneOptions,
  system: SystemFacts,
): string {
  const perMode = (figure: (r: RunFigures) => string): string =>
    MODES.map((m) =>
      runs
        .filter((r) => r.mode === m)
        .map(figure)
        .join('/'),
    ).join(', ');
  return (
    `records = input sentences: ${corpus.sentences} sentences (${corpus.updates} words, one sink update each) ` +
    `stored in JetStream before the runs, read from the first message by every run; the demo's 3 worker processes ` +
    `[${WORKER_TASKS.map((t) => t.join(', ')).join('] [')}], a coordinator child process, one ${system.etcd} and one ${system.nats}, ${coresText(system)}; ` +
    `a run is timed from the coordinator's "every task ready: job started" to the last sink update stored ` +
    `(output stream last_ts) with all updates visible exactly once; once both sources have read all input a checkpoint ` +
    `is triggered every ${POLL_MS} ms until the output is complete, in every mode: the runs without checkpoints publish ` +
    `their whole output at that end, not overlapped with the reading, which favours the interval modes; ` +
    `median of ${options.rounds} runs per mode, rounds alternate the modes in rotated order, fresh workers per run; ` +
    `within each round, against the run without checkpoints (1000 ms, 100 ms; the machine's speed drifts between ` +
    `rounds): ${pairedRatios(runs, (r) => recordsPerS(r, corpus))}; ` +
    `records/s per run (none, 1000 ms, 100 ms; * a source's consumer was re-created): ` +
    `${perMode((r) => `${Math.round(recordsPerS(r, corpus))}${r.consumers > INPUT_SUBJECTS.length ? '*' : ''}`)}; ` +
    `sources done reading at (records/s of the read phase alone): ${perMode((r) => String(Math.round(corpus.sentences / (r.readMs / 1000))))}; ` +
    `checkpoints completed per run and their median duration: ${perMode((r) => `${r.checkpointMs.length}@${median(r.checkpointMs)}ms`)}`
  );
}

/** The coordinator's CPU time per checkpoint, from the idle windows after the runs. */
function cpuRow(runs: readonly RunFigures[]): Row {
  const fit = cpuPerCheckpoint(runs.map((r) => r.idle));
  const checkpoints = runs.reduce((n, r) => n + r.idle.checkpoints, 0);
  return {
    id: 'dataplane.coordinator_cpu_per_checkpoint',
    value: round3(fit.perCheckpointMs),
    unit: 'ms/checkpoint',
    target: null,
    ratio: null,
    met: null,
    conditions:
      `the coordinator child's CPU time (user + system, /proc/<pid>/stat, 10 ms ticks) in a ${IDLE_WINDOW_MS} ms window ` +
      `after each of the ${runs.length} runs of the records/s rows, the job up and its 3 workers idle; least-squares fit ` +
      `CPU = a × window + b × checkpoints completed in it over all windows (${checkpoints} checkpoints of 5 tasks, ` +
      `one etcd commit each), b reported; a = ${round3(fit.perSecondMs)} ms/s (heartbeats of 3 workers every 250 ms, timers)`,
  };
}

/**
 * Least squares of CPU time on window length and checkpoints: the cost of
 * a checkpoint, with the cost of just running a job separated out.
 */
function cpuPerCheckpoint(windows: readonly RunFigures['idle'][]): { perCheckpointMs: number; perSecondMs: number } {
  let [ww, wc, cc, wy, cy] = [0, 0, 0, 0, 0];
  for (const { cpuMs, wallMs, checkpoints } of windows) {
    const w = wallMs / 1000;
    ww += w * w;
    wc += w * checkpoints;
    cc += checkpoints * checkpoints;
    wy += w * cpuMs;
    cy += checkpoints * cpuMs;
  }
  const det = ww * cc - wc * wc;
  return { perCheckpointMs: (ww * cy - wc * wy) / det, perSecondMs: (cc * wy - wc * cy) / det };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (isMain(import.meta.url)) await runStandalone('data-plane', dataPlane);
