/**
 * The word count as the data-plane and recovery scenarios run it on the
 * run's etcd and NATS: one coordinator child process (`ckpt coordinator`),
 * whose JSON log lines are kept and whose CPU time is read from /proc,
 * worker child processes (examples/wordcount/worker.ts), and the JetStream
 * input stream. Both kinds of process run the compiled JavaScript in dist/
 * with plain `node`, as a deployment does; `make build` first.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../src/bus/index.js';
import { createCoordinatorClient, type CoordinatorClient } from '../src/client/index.js';
import { freePort } from '../src/dev/index.js';
import { INPUT_STREAM } from '../examples/wordcount/job.js';
import { ManagedChild } from '../test/chaos/child.js';
import {
  COMPILED_NODE_ARGS,
  COMPILED_WORDCOUNT_WORKER,
  COMPILED_WORKER_SNAPSHOT,
  requireCompiled,
} from './lib/compiled-child.js';
import { coordinatorChild, LogEntries, parseLogLine, type CoordinatorLogEntry } from './lib/coordinator-log-child.js';
import type { ScenarioContext } from './lib/row.js';

/** Linux counts a process's CPU time in ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_S = 100;

/** Publications of the input waiting for their acknowledgement at once. */
const PRELOAD_WINDOW = 1024;

/** How long the coordinator has to start and lead. */
const COORDINATOR_START_TIMEOUT_MS = 30_000;

/** One JSON log line of the coordinator, with the fields the scenarios read. */
export type LogEntry = CoordinatorLogEntry;

/** A coordinator child process on the scenario's etcd prefix and subject prefix. */
export class BenchCoordinator {
  readonly address: string;
  readonly client: CoordinatorClient;
  readonly #log: LogEntries<LogEntry>;
  readonly #child: ManagedChild;

  private constructor(ctx: ScenarioContext, address: string, extraArgs: readonly string[]) {
    this.address = address;
    this.#log = new LogEntries(
      (what, timeoutMs) => `the coordinator did not log ${what} within ${timeoutMs} ms:\n${this.#child.tail(10)}`,
    );
    this.#child = coordinatorChild(ctx, {
      label: 'coordinator',
      address,
      extraArgs,
      onLine: (line) => {
        const entry = parseLogLine(line);
        if (entry !== undefined) this.#log.add(entry);
      },
    });
    this.client = createCoordinatorClient(address);
  }

  /**
   * Starts a coordinator with `extraArgs` and resolves once it leads.
   * Rejects, saying to run `make build`, when dist/ is missing or older
   * than the sources (workers start only with a coordinator, so this
   * check covers them too).
   */
  static async start(ctx: ScenarioContext, extraArgs: readonly string[]): Promise<BenchCoordinator> {
    await requireCompiled();
    const coordinator = new BenchCoordinator(ctx, `127.0.0.1:${await freePort()}`, extraArgs);
    coordinator.#child.start();
    try {
      await coordinator.waitFor((e) => e.msg === 'coordinator started', COORDINATOR_START_TIMEOUT_MS, 'its start');
    } catch (err) {
      await coordinator.stop();
      throw err;
    }
    return coordinator;
  }

  /** The CPU time (user and system, every thread) the process has used so far, in ms. */
  cpuMs(): Promise<number> {
    return processCpuMs(this.#child.pid);
  }

  /** Every log line so far, in arrival order. */
  get entries(): readonly LogEntry[] {
    return this.#log.entries;
  }

  /** The first log entry matching `match`, kept or yet to come; rejects after `timeoutMs`. */
  waitFor(match: (e: LogEntry) => boolean, timeoutMs: number, what: string): Promise<LogEntry> {
    return this.#log.waitFor(match, timeoutMs, what);
  }

  /** Entries of `jobId` with message `msg`. */
  logged(jobId: string, msg: string): LogEntry[] {
    return this.entries.filter((e) => e.jobId === jobId && e.msg === msg);
  }

  /** Closes the client and stops the process (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    this.client.close();
    await this.#child.stop();
  }
}

/** The CPU time (user and system, every thread) process `pid` has used so far, in ms, from /proc. */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** What worker processes of one job run and where they attach. */
export interface WorkerLayout {
  coordinator: BenchCoordinator;
  nats: readonly string[];
  jobId: string;
  /** The tasks of each worker process. */
  tasks: readonly (readonly string[])[];
  stateDir: string;
  /** Names the processes: `<name>-<i>`. Default `worker`. */
  name?: string;
  /**
   * When a process starts as a standby (`--standby`): `always`, or
   * `on-restart` (every start after its first). Default: never.
   */
  standby?: 'always' | 'on-restart';
  /** The workers read and write the job's own streams (`wordCountIo(jobId)`, `--own-streams`). Default: SENTENCES and WORDCOUNT. */
  ownStreams?: boolean;
  /**
   * How a start of a worker process runs the bundled worker, asked at every
   * start: `code-cache` (the bundle, with its V8 code cache) or `snapshot`
   * (from make build's V8 startup snapshot of it, `node --snapshot-blob`).
   * Default: `code-cache`.
   */
  launch?: () => WorkerLaunch;
}

/** How a worker process starts: see `WorkerLayout.launch`. */
export type WorkerLaunch = 'code-cache' | 'snapshot';

/**
 * Starts one word count worker process per entry of `layout.tasks`
 * (dist/examples/wordcount/bundled-worker.js under plain `node`); each new start
 * has a new worker id.
 */
export function startWorkers(layout: WorkerLayout): ManagedChild[] {
  const name = layout.name ?? 'worker';
  const workers = layout.tasks.map((tasks, i) => {
    const standby = (): boolean => layout.standby === 'always' || (layout.standby === 'on-restart' && child.starts > 0);
    const child: ManagedChild = new ManagedChild({
      nodeArgs: COMPILED_NODE_ARGS,
      label: `${name}-${i}`,
      args: () => [
        ...(layout.launch?.() === 'snapshot' ? ['--snapshot-blob', COMPILED_WORKER_SNAPSHOT] : []),
        COMPILED_WORDCOUNT_WORKER,
        ...['--coordinator', layout.coordinator.address],
        ...['--nats', layout.nats.join(',')],
        ...['--job', layout.jobId],
        ...['--tasks', tasks.join(',')],
        ...['--state-dir', layout.stateDir],
        ...['--worker-id', `${layout.jobId}-${name}-${i}-${child.starts}`],
        ...(standby() ? ['--standby'] : []),
        ...(layout.ownStreams === true ? ['--own-streams'] : []),
      ],
    });
    return child;
  });
  for (const w of workers) w.start();
  return workers;
}

/** Stops worker processes: SIGTERM, SIGKILL after `graceMs`. */
export async function stopWorkers(workers: readonly ManagedChild[], graceMs = 3000): Promise<void> {
  await Promise.all(workers.map((w) => w.stop(graceMs)));
}

/** A coordinator, a NATS connection of the scenario's own and a state directory for the workers. */
export interface BenchStack {
  coordinator: BenchCoordinator;
  nc: NatsConnection;
  stateDir: string;
  /** Stops the coordinator, deletes `streams`, closes the connection and removes the state directory. */
  stop(streams: readonly string[]): Promise<void>;
}

/** Starts a `BenchStack`; `coordinatorArgs` are added to the coordinator's flags. */
export async function startBenchStack(ctx: ScenarioContext, coordinatorArgs: readonly string[]): Promise<BenchStack> {
  const stateDir = await mkdtemp(join(tmpdir(), 'ckpt-bench-'));
  const nc = await connectNats([...ctx.nats], `${ctx.prefix}-bench`).catch(async (err: unknown) => {
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  });
  const coordinator = await BenchCoordinator.start(ctx, coordinatorArgs).catch(async (err: unknown) => {
    await nc.close();
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  });
  const stop = async (streams: readonly string[]): Promise<void> => {
    await coordinator.stop();
    for (const stream of streams) await deleteStream(nc, stream).catch(() => undefined);
    await nc.close().catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  };
  return { coordinator, nc, stateDir, stop };
}

/**
 * Creates the input stream afresh (`SENTENCES` on `sentences.*`, or
 * `stream` on `filter`) and stores `corpus` in it, sentence `i` on
 * `subjects[i % subjects.length]`, each acknowledged.
 */
export async function preloadInput(
  nc: NatsConnection,
  corpus: readonly string[],
  subjects: string[],
  { stream, filter }: { stream: string; filter: string } = { stream: INPUT_STREAM, filter: 'sentences.*' },
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await deleteStream(nc, stream);
  await jsm.streams.add({ name: stream, subjects: [filter] });
  const js = jetstream(nc);
  for (let i = 0; i < corpus.length; i += PRELOAD_WINDOW) {
    const window = corpus.slice(i, i + PRELOAD_WINDOW);
    await Promise.all(window.map((sentence, j) => js.publish(subjects[(i + j) % subjects.length] as string, sentence)));
  }
}

/** Deletes a stream; a stream that does not exist is fine. */
export async function deleteStream(nc: NatsConnection, name: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.delete(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
  }
}
