/**
 * One timed run of the data-plane scenario: the word count on ckpt with a
 * checkpoint policy, or on nats.js alone (bench/lib/bare-wordcount.ts), on
 * fresh worker processes and an empty output stream, from its start to its
 * whole output visible, with the CPU time its processes used.
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { WORKER_TASKS, wordCountIo, wordCountSpec, type WordCountIo } from '../../examples/wordcount/job.js';
import { ManagedChild } from '../../test/chaos/child.js';
import {
  deleteStream,
  preloadInput,
  processCpuMs,
  startWorkers,
  stopWorkers,
  type BenchCoordinator,
  type BenchStack,
  type LogEntry,
} from '../wordcount-stack.js';
import { COMPILED_BARE_WORDCOUNT, COMPILED_NODE_ARGS } from './compiled-child.js';
import type { ScenarioContext } from './row.js';

/** What a run runs: the word count on nats.js alone, or on ckpt with a checkpoint every `intervalMs` (0: none). */
export interface Mode {
  id: 'bare' | 'none' | 'interval_1000ms' | 'interval_100ms';
  intervalMs?: number;
}

export const BARE: Mode = { id: 'bare' };
export const NONE: Mode = { id: 'none', intervalMs: 0 };
export const MODES: readonly Mode[] = [
  BARE,
  NONE,
  { id: 'interval_1000ms', intervalMs: 1000 },
  { id: 'interval_100ms', intervalMs: 100 },
];

/** How often a run's progress is looked at (and, on ckpt once the input is read, a checkpoint triggered). */
export const POLL_MS = 100;
/**
 * A worker process using at most this much CPU time in one poll is idle.
 * Whether the sources have read all input is asked of JetStream only then.
 * (Consumer info of a subject-filtered consumer on nats-server 2.9 could
 * turn its reading slow for the rest of the run (`serverFiltersSlowly`);
 * the sources there read unfiltered.)
 */
const IDLE_CPU_MS = 10;
/** How long a ckpt job stays up after a run, idle, for the coordinator's CPU time. */
export const IDLE_WINDOW_MS = 2000;
/** Longest a run may take from its start to the whole output visible. */
const RUN_TIMEOUT_MS = 90_000;
/** Longest the workers may take to attach and restore, or the bare ones to subscribe. */
const START_TIMEOUT_MS = 60_000;

/** What one run measured. */
export interface RunFigures {
  mode: Mode;
  /** The round the run belongs to (every mode runs once per round, back to back). */
  round: number;
  /** Start (ckpt: the job started; bare: the go message) to the whole output visible, in ms. */
  runMs: number;
  /** Start to the sources seen to have read all input, in ms. */
  readMs: number;
  /** CPU time of the processes (workers, coordinator, NATS, etcd) from the start to the output complete, in ms. */
  cpuMs: number;
  /** Consumers the sources read the input with: 2, unless one was re-created. */
  consumers: number;
  /** Durations of the checkpoints completed during the run, in ms (none for bare). */
  checkpointMs: number[];
  /** ckpt: the idle window after the run: the coordinator's CPU time and the window, in ms, and checkpoints completed. */
  idle?: { cpuMs: number; wallMs: number; checkpoints: number };
}

/** The corpus every run reads. */
export interface Corpus {
  sentences: number;
  /** Updates the sink makes visible: one per word. */
  updates: number;
}

export function recordsPerS(run: RunFigures, corpus: Corpus): number {
  return corpus.sentences / (run.runMs / 1000);
}

export function recordsPerCpuS(run: RunFigures, corpus: Corpus): number {
  return corpus.sentences / (run.cpuMs / 1000);
}

/**
 * One run of `mode`, logged, on streams of its own: its input stream is
 * stored afresh with `text` before the run (untimed), and both streams are
 * deleted after it, so that no run reads a stream or consumer left by an
 * earlier one.
 */
export async function timeRun(
  stack: BenchStack,
  ctx: ScenarioContext,
  text: readonly string[],
  corpus: Corpus,
  mode: Mode,
  round: number,
): Promise<RunFigures> {
  const jobId = `dataplane-${mode.id}-${round}`;
  const io = wordCountIo(jobId);
  const subjects = WORKER_TASKS.flat()
    .filter((t) => t.startsWith('split-'))
    .map((t) => io.inputSubject(Number(t.slice('split-'.length))));
  await deleteStream(stack.nc, io.outputStream);
  await preloadInput(stack.nc, text, subjects, { stream: io.inputStream, filter: io.inputFilter });
  let figures: Measured;
  try {
    figures =
      mode.intervalMs === undefined
        ? await bareRun(stack, ctx, io, jobId, corpus, mode, round)
        : await ckptRun(stack, ctx, io, jobId, corpus, mode, round);
  } finally {
    for (const stream of [io.inputStream, io.outputStream]) await deleteStream(stack.nc, stream).catch(() => undefined);
  }
  const cpuText = figures.cpuByProcess.map((p) => `${p.name} ${p.ms}`).join(', ');
  const { idle } = figures;
  ctx.log(
    `${mode.id} round ${round + 1}: ${Math.round(recordsPerS(figures, corpus))} records/s, ` +
      `${Math.round(recordsPerCpuS(figures, corpus))} records/CPU-s (${figures.runMs} ms, ${figures.cpuMs} ms CPU: ` +
      `${cpuText}; input read after ${figures.readMs} ms by ${figures.consumers} consumers, ` +
      `${figures.checkpointMs.length} checkpoints` +
      `${idle === undefined ? '' : `; idle: coordinator CPU ${idle.cpuMs} ms in ${idle.wallMs} ms, ${idle.checkpoints} checkpoints`})`,
  );
  return figures;
}

type Measured = RunFigures & { cpuByProcess: Array<{ name: string; ms: number }> };

async function ckptRun(
  stack: BenchStack,
  ctx: ScenarioContext,
  io: WordCountIo,
  jobId: string,
  corpus: Corpus,
  mode: Mode,
  round: number,
): Promise<Measured> {
  const { coordinator } = stack;
  await coordinator.client.submitJob({ spec: wordCountSpec(jobId, mode.intervalMs ?? 0) });
  const workers = startWorkers({
    coordinator,
    nats: ctx.nats,
    jobId,
    tasks: WORKER_TASKS,
    stateDir: stack.stateDir,
    ownStreams: true,
  });
  try {
    const isStart = (e: LogEntry): boolean => e.jobId === jobId && e.msg === 'every task ready: job started';
    const started = await coordinator.waitFor(isStart, START_TIMEOUT_MS, `job ${jobId} started`);
    const trigger = (): Promise<unknown> => coordinator.client.triggerCheckpoint({ jobId }).catch(() => undefined);
    const figures = await measure(stack, ctx, io, workers, corpus, started.time, trigger);
    const checkpointMs = coordinator.logged(jobId, 'checkpoint completed').map((e) => e.durationMs ?? 0);
    const idle = await idleWindow(coordinator, jobId);
    if (coordinator.logged(jobId, 'job recovery started').length > 0)
      throw new Error(`job ${jobId} recovered during the run; its figures would not be comparable`);
    return { ...figures, mode, round, checkpointMs, idle };
  } finally {
    await coordinator.client.cancelJob({ jobId }).catch(() => undefined);
    await stopWorkers(workers);
  }
}

async function bareRun(
  stack: BenchStack,
  ctx: ScenarioContext,
  io: WordCountIo,
  jobId: string,
  corpus: Corpus,
  mode: Mode,
  round: number,
): Promise<Measured> {
  const prefix = `${ctx.prefix}.bare.${round}`;
  const { workers, ready } = startBareWorkers(ctx.nats, prefix, jobId);
  try {
    await ready;
    const startedAt = Date.now();
    stack.nc.publish(`${prefix}.go`);
    const figures = await measure(stack, ctx, io, workers, corpus, startedAt, () => Promise.resolve());
    return { ...figures, mode, round, checkpointMs: [] };
  } finally {
    await stopWorkers(workers);
  }
}

/** Starts the bare word count's 3 processes on job `jobId`'s streams; `ready` resolves once each has subscribed. */
function startBareWorkers(
  nats: readonly string[],
  prefix: string,
  jobId: string,
): { workers: ManagedChild[]; ready: Promise<void> } {
  const readies: Array<Promise<void>> = [];
  const workers = WORKER_TASKS.map((tasks, i) => {
    let onReady = (): void => undefined;
    readies.push(new Promise((resolve) => (onReady = resolve)));
    return new ManagedChild({
      nodeArgs: COMPILED_NODE_ARGS,
      label: `bare-${i}`,
      args: () => [
        COMPILED_BARE_WORDCOUNT,
        ...['--nats', nats.join(','), '--prefix', prefix, '--tasks', tasks.join(','), '--job', jobId],
      ],
      onLine: (line) => (line === 'ready' ? onReady() : undefined),
    });
  });
  for (const w of workers) w.start();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const tails = workers.map((w) => `${w.spec.label}: ${w.tail(5)}`).join('\n');
      reject(new Error(`the bare word count did not subscribe within ${START_TIMEOUT_MS} ms:\n${tails}`));
    }, START_TIMEOUT_MS);
  });
  const ready = Promise.race([Promise.all(readies), timeout]).then(() => clearTimeout(timer));
  return { workers, ready };
}

/**
 * From `startedAt` to the whole output visible: the times, the CPU time of
 * every process and the consumers the sources used. `trigger` runs at every
 * poll once the sources have read all input.
 */
async function measure(
  stack: BenchStack,
  ctx: ScenarioContext,
  io: WordCountIo,
  workers: readonly ManagedChild[],
  corpus: Corpus,
  startedAt: number,
  trigger: () => Promise<unknown>,
): Promise<Pick<Measured, 'runMs' | 'readMs' | 'cpuMs' | 'cpuByProcess' | 'consumers'>> {
  const cpu = jobCpu(ctx, stack.coordinator, workers);
  const cpuBefore = await cpu();
  const sources = workers.filter((_, i) => WORKER_TASKS[i]?.some((t) => t.startsWith('split')));
  const { finishedAt, inputReadAt } = await awaitOutput(stack, io, corpus.updates, startedAt, sources, trigger);
  const cpuAfter = await cpu();
  const cpuByProcess = cpuAfter.map((p, i) => ({ ...p, ms: p.ms - (cpuBefore[i]?.ms ?? 0) }));
  return {
    runMs: finishedAt - startedAt,
    readMs: inputReadAt - startedAt,
    cpuMs: cpuByProcess.reduce((n, p) => n + p.ms, 0),
    cpuByProcess,
    consumers: (await inputConsumers(await jetstreamManager(stack.nc), io, startedAt)).length,
  };
}

/**
 * Reads the CPU time used so far by each process of a run: its workers,
 * the coordinator (idle in a bare run) and, when their pids are known,
 * nats-server and etcd.
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
 * From then on, runs `trigger` at every poll.
 */
async function awaitOutput(
  stack: BenchStack,
  io: WordCountIo,
  wanted: number,
  sinceMs: number,
  sources: readonly ManagedChild[],
  trigger: () => Promise<unknown>,
): Promise<{ finishedAt: number; inputReadAt: number }> {
  const jsm = await jetstreamManager(stack.nc);
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  const idle = idleWatch(sources.map((w) => w.pid));
  let inputReadAt: number | undefined;
  for (;;) {
    const state = await outputState(jsm, io);
    if (state.messages > wanted) throw new Error(`${state.messages} updates visible, ${wanted} expected`);
    if (state.messages === wanted)
      return { finishedAt: Date.parse(state.last_ts), inputReadAt: inputReadAt ?? Date.parse(state.last_ts) };
    if (Date.now() > deadline)
      throw new Error(`${state.messages} of ${wanted} updates visible after ${RUN_TIMEOUT_MS} ms`);
    if (inputReadAt === undefined && (await idle()) && (await inputRead(jsm, io, sinceMs))) inputReadAt = Date.now();
    if (inputReadAt !== undefined) await trigger();
    await delay(POLL_MS);
  }
}

/**
 * The output stream's message count and last time; none yet while the sink
 * has not created the stream (it was deleted before the run).
 */
async function outputState(jsm: JetStreamManager, io: WordCountIo): Promise<{ messages: number; last_ts: string }> {
  try {
    return (await jsm.streams.info(io.outputStream)).state;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
      return { messages: 0, last_ts: new Date(0).toISOString() };
    throw err;
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

/**
 * True when, for each input subject, a consumer created since `sinceMs` has
 * delivered everything: one filtered on it, or one without a filter (a
 * source that filters itself) for each subject without.
 */
async function inputRead(jsm: JetStreamManager, io: WordCountIo, sinceMs: number): Promise<boolean> {
  const subjects = [0, 1].map((p) => io.inputSubject(p));
  const done = (await inputConsumers(jsm, io, sinceMs)).filter((c) => c.num_pending === 0);
  const unfiltered = done.filter((c) => filterOf(c) === undefined).length;
  const notFiltered = subjects.filter((subject) => !done.some((c) => filterOf(c) === subject)).length;
  return unfiltered >= notFiltered;
}

/**
 * The input stream's consumers created since `sinceMs`: one per source,
 * and one more each time nats.js re-created a source's ordered consumer
 * (after missed heartbeats, say).
 */
async function inputConsumers(jsm: JetStreamManager, io: WordCountIo, sinceMs: number): Promise<ConsumerInfo[]> {
  // The server's clock may lag a little behind the coordinator's log.
  const since = sinceMs - 1000;
  return (await jsm.consumers.list(io.inputStream).next()).filter((c) => Date.parse(c.created) >= since);
}

/** The consumer's subject filter; undefined without one. */
function filterOf(consumer: ConsumerInfo): string | undefined {
  const filter = consumer.config.filter_subject ?? consumer.config.filter_subjects?.[0];
  return filter === '' ? undefined : filter;
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
