/**
 * A running job for the tests of what a worker does with forged and junk
 * NATS messages: a real coordinator, one SDK worker running a ticking
 * source and a counting sink (with a commit hook) under periodic
 * checkpoints, snapshots in a local directory, a log kept in memory, and a
 * raw NATS connection to publish on the job's subjects.
 */
import type { ExecutionContext } from 'ava';
import { EventEmitter } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { pino } from 'pino';
import { epochHeaders, jobSubjects, type ControlKind, type JobSubjects } from '../../src/bus/index.js';
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';
import type { Logger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  Worker,
  type SourceTask,
  type Task,
  type WorkerOptions,
} from '../../src/sdk/index.js';
import { natsConnection } from '../helpers/clients.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import type { TestServers } from '../helpers/servers.js';

/** One log line as pino wrote it. */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

/** A pino logger writing into memory, with a way to wait for a line. */
export class MemoryLog {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  readonly #added = new EventEmitter();

  /** `level`: the least level kept. */
  constructor(level: 'debug' | 'info' | 'warn' = 'debug') {
    this.logger = pino({ level }, { write: (line: string) => this.#add(line) });
  }

  /** Lines written from `from` (an index into `lines`) on that `match` accepts. */
  count(match: (line: LogLine) => boolean, from = 0): number {
    return this.lines.slice(from).filter(match).length;
  }

  /** Resolves with the first line from now on (or already written from `from`) that `match` accepts. */
  waitFor(match: (line: LogLine) => boolean, timeoutMs = 10_000, from = 0): Promise<LogLine> {
    const found = this.lines.slice(from).find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onLine = (line: LogLine): void => {
        if (!match(line)) return;
        clearTimeout(timer);
        this.#added.off('line', onLine);
        resolve(line);
      };
      const timer = setTimeout(() => {
        this.#added.off('line', onLine);
        reject(new Error(`no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#added.on('line', onLine);
    });
  }

  #add(text: string): void {
    const line = JSON.parse(text) as LogLine;
    this.lines.push(line);
    this.#added.emit('line', line);
  }
}

/** A source that emits `x` every `everyMs`, resuming after its restored offset. */
export function tickingSource(everyMs: number): SourceTask<string> {
  return {
    async *read(positions, ctx) {
      let offset = positions.find((p) => p.input === 'ticks')?.offset ?? 0;
      while (!ctx.signal.aborted) {
        await new Promise((resolve) => setTimeout(resolve, everyMs));
        offset += 1;
        yield { input: 'ticks', offset, value: 'x' };
      }
    },
    handle: (message, ctx) => ctx.emit(message.value),
  };
}

/** A sink counting records in its keyed state, recording each checkpoint its commit hook ran for. */
export function countingSink(commits: number[]): Task {
  return {
    process(_record, ctx) {
      ctx.state.set('n', ((ctx.state.get('n') as number | undefined) ?? 0) + 1);
    },
    onCheckpointComplete(checkpointId) {
      commits.push(checkpointId);
    },
  };
}

/** A job running under periodic checkpoints, and what a test needs to forge messages at it. */
export interface RunningJob {
  c: TestCoordinator;
  jobId: string;
  worker: Worker;
  /** Where the snapshots are. */
  dir: string;
  log: MemoryLog;
  /** Checkpoint ids the sink's commit hook ran for. */
  commits: number[];
  /** Checkpoint ids of the `complete` events of the worker, in order. */
  completes: number[];
  /** A raw connection, for forged messages. */
  nc: NatsConnection;
  /** The job's subjects, from the worker's welcome. */
  subjects: JobSubjects;
  /** Publishes `bytes` on the `kind` control subject with an epoch header. */
  forge(kind: ControlKind, bytes: Uint8Array, epoch?: number): Promise<void>;
  /** Resolves with the id of the first checkpoint above `id` that completes at the worker. */
  committedAbove(id: number, timeoutMs?: number): Promise<number>;
  /** The file names of the sink's snapshots. */
  sinkSnapshots(): Promise<string[]>;
}

/** Options of `runningJob`. */
export interface RunningJobOptions {
  jobId?: string;
  policy?: CheckpointPolicy;
  worker?: Partial<WorkerOptions>;
  /** The least level of the in-memory log. Default debug. */
  logLevel?: 'debug' | 'info' | 'warn';
}

/** Starts the job and resolves once a checkpoint with a stored sink snapshot has completed at the worker. */
export async function runningJob(
  t: ExecutionContext,
  servers: TestServers,
  options: RunningJobOptions = {},
): Promise<RunningJob> {
  const jobId = options.jobId ?? 'job';
  const c = await startTestCoordinator(t, servers);
  const policy = { intervalMs: 200, retained: 3, tolerableFailures: -1, ...options.policy };
  await c.client.submitJob({
    spec: { jobId, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }], policy },
  });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-worker-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = new MemoryLog(options.logLevel);
  const commits: number[] = [];
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir, fsync: false }),
    logger: log.logger,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...options.worker,
  });
  worker.addTask('src', tickingSource(10)).addTask('sink', countingSink(commits));
  t.teardown(() => worker.stop());
  const completes: number[] = [];
  worker.on('complete', (m) => completes.push(m.checkpointId));
  // Ready once a checkpoint in which the sink had state (and stored a snapshot) has completed.
  const stored = new Set<number>();
  worker.on('snapshot', (e) => {
    if (e.taskId === 'sink' && e.bytes.length > 0) stored.add(e.checkpointId);
  });
  const ready = worker.waitFor('complete', (m) => stored.has(m.checkpointId), { timeoutMs: 20_000 });
  await worker.start();
  await ready;
  const nc = await natsConnection(t, servers.natsUrl);
  const subjects = jobSubjects(worker.welcome?.controlSubjectPrefix ?? '');
  return {
    c,
    jobId,
    worker,
    dir,
    log,
    commits,
    completes,
    nc,
    subjects,
    async forge(kind, bytes, epoch = worker.epoch) {
      nc.publish(subjects[kind], bytes, { headers: epochHeaders(epoch) });
      await nc.flush();
    },
    async committedAbove(id, timeoutMs = 15_000) {
      const [complete] = await worker.waitFor('complete', (m) => m.checkpointId > id, { timeoutMs });
      return complete.checkpointId;
    },
    async sinkSnapshots() {
      return (await readdir(join(dir, jobId, 'sink'))).sort();
    },
  };
}
