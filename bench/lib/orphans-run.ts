/**
 * The faulty run of the `orphans` benchmark: worker processes
 * (`orphans-worker-child.ts`) of one job, each a source and a sink with
 * keyed state in a JetStream Object Store bucket or local directories,
 * under periodic checkpoints; the sinks decline some checkpoints and stall
 * some uploads past the timeout, and worker processes are SIGKILLed while
 * one of their uploads is under way, then started again. Every
 * checkpoint's outcome is read from WatchCheckpoints, every upload from
 * the workers' notices.
 */
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import type { CoordinatorClient, QueryClient } from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import { waitRunning } from './bench-job.js';
import type { OrphanWorkerStart, UploadNotice } from './orphans-worker-child.js';

const WORKER_CHILD = new URL('./orphans-worker-child.ts', import.meta.url).pathname;

/** How long the run may take to reach its counts before it fails. */
const RUN_TIMEOUT_MS = 300_000;

/** What the run must reach before the faults stop. */
export interface RunTargets {
  completed: number;
  aborted: number;
  kills: number;
  /** A kill waits for an upload of at least this many bytes (a full piece), so that it lands mid-upload. */
  killUploadBytes: number;
}

/** One checkpoint's outcome. */
export interface Outcome {
  state: 'completed' | 'aborted';
  reason: string;
}

/** One SIGKILL and the upload it interrupted. */
export interface Kill {
  workerId: string;
  upload: UploadNotice;
  /** The upload had not reported stored or failed when the process was gone. */
  unfinished: boolean;
}

/** Everything the run saw. */
export class RunRecord {
  readonly outcomes = new Map<number, Outcome>();
  /** Every upload announced, in order, by phase. */
  readonly uploads: UploadNotice[] = [];
  readonly kills: Kill[] = [];
  readonly #changed = new Set<() => void>();
  #failed: string | undefined;

  get completed(): number {
    return [...this.outcomes.values()].filter((o) => o.state === 'completed').length;
  }

  get aborted(): number {
    return this.outcomes.size - this.completed;
  }

  /** Resolves once `predicate` holds, checked at every checkpoint outcome; rejects at `deadline`. */
  async until(predicate: () => boolean, deadline: number, what: string): Promise<void> {
    while (!predicate()) {
      if (this.#failed !== undefined) throw new Error(`WatchCheckpoints failed: ${this.#failed}`);
      if (Date.now() > deadline) throw new Error(`not reached in time: ${what}; ${this.summary()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, Math.min(1000, deadline - Date.now())));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#changed.add(done);
      });
    }
  }

  /** Counts so far, for messages. */
  summary(): string {
    return `${this.completed} completed, ${this.aborted} aborted, ${this.kills.length} kills, ${this.uploads.length} upload notices`;
  }

  /** The stream of checkpoint events failed: every wait fails from now on. */
  fail(err: unknown): void {
    this.#failed = err instanceof Error ? err.message : String(err);
    this.#wake();
  }

  /** Records a checkpoint's outcome from its summary; other states are ignored. */
  note(summary: CheckpointSummary__Output): void {
    const id = Number(summary.checkpointId);
    if (summary.state === 'CHECKPOINT_STATE_COMPLETED') this.outcomes.set(id, { state: 'completed', reason: '' });
    else if (summary.state === 'CHECKPOINT_STATE_ABORTED') {
      const reason = summary.abortReason.replace('ABORT_REASON_', '').toLowerCase();
      this.outcomes.set(id, { state: 'aborted', reason });
    } else return;
    this.#wake();
  }

  #wake(): void {
    const waiting = [...this.#changed];
    this.#changed.clear();
    for (const done of waiting) done();
  }
}

/** A kill waiting for its moment: the armed worker's next large upload, once it has written something. */
interface Armed {
  workerId: string;
  bytes: number;
  killed: (kill: Kill) => void;
  /** The upload under way that the kill waits in, if one is. */
  upload?: UploadNotice;
  /** Chunk messages seen per chunk subject since that upload started. */
  chunks: Map<string, number>;
  /** Watches the task's directory for the upload's temporary file. */
  watcher?: FSWatcher;
}

/** Chunks of one upload published before the kill: the upload is part-way through its object. */
const KILL_AFTER_CHUNKS = 2;

/**
 * How a kill finds its moment: in the object store, by the bucket's chunk
 * messages, which this process sees on a plain subscription; in a
 * directory, by the upload's temporary file appearing in the task's
 * directory (`dirOf` the worker's directory).
 */
export type KillTiming =
  { kind: 'chunks'; nc: NatsConnection; bucket: string } | { kind: 'files'; dirOf: (workerId: string) => string };

/**
 * The job's worker processes, each restartable under its worker id. A
 * kill lands part-way through an upload (`KillTiming`): once it has
 * published some of its chunks but not its metadata, or once its
 * temporary file exists but has not been renamed into place.
 */
export class OrphanWorkers {
  readonly #plans: OrphanWorkerStart[];
  readonly #children = new Map<string, BenchChild>();
  readonly #record: RunRecord;
  readonly #timing: KillTiming;
  readonly #chunks: Subscription | undefined;
  #armed: Armed | undefined;

  constructor(plans: OrphanWorkerStart[], record: RunRecord, timing: KillTiming) {
    this.#plans = plans;
    this.#record = record;
    this.#timing = timing;
    this.#chunks =
      timing.kind === 'chunks'
        ? timing.nc.subscribe(`$O.${timing.bucket}.C.>`, { callback: (_err, msg) => this.#onChunk(msg.subject) })
        : undefined;
  }

  /** Starts every worker process. */
  async startAll(): Promise<void> {
    await Promise.all(this.#plans.map((plan) => this.#start(plan)));
  }

  /**
   * SIGKILLs `workerId`'s process part-way through its next upload of at
   * least `bytes`, then starts it again; rejects when no such upload came
   * by `deadline`.
   */
  async killDuringUpload(workerId: string, bytes: number, deadline: number): Promise<Kill> {
    const plan = this.#plans.find((p) => p.workerId === workerId);
    if (plan === undefined) throw new Error(`no worker ${workerId}`);
    let timer: NodeJS.Timeout | undefined;
    const kill = await new Promise<Kill>((resolve, reject) => {
      const armed: Armed = { workerId, bytes, killed: resolve, chunks: new Map() };
      this.#armed = armed;
      timer = setTimeout(() => {
        if (this.#armed !== armed) return;
        this.#armed = undefined;
        armed.watcher?.close();
        reject(new Error(`no upload of at least ${bytes} B by ${workerId} to kill it in`));
      }, deadline - Date.now());
    }).finally(() => clearTimeout(timer));
    kill.unfinished = !this.#record.uploads.some((u) => u.phase !== 'start' && sameUpload(u, kill.upload));
    this.#record.kills.push(kill);
    await this.#start(plan);
    return kill;
  }

  /** Turns the faults off in every process. */
  async calm(): Promise<void> {
    await Promise.all([...this.#children.values()].map((c) => c.request<void>({ kind: 'calm' })));
  }

  /** Stops every worker gracefully, and the processes. */
  async stop(): Promise<void> {
    this.#chunks?.unsubscribe();
    const children = [...this.#children.values()];
    this.#children.clear();
    await Promise.all(children.map((c) => c.request<void>({ kind: 'close' }).catch(() => undefined)));
    await Promise.all(children.map((c) => c.stop()));
  }

  async #start(plan: OrphanWorkerStart): Promise<void> {
    const child = forkBenchChild(`orphans worker ${plan.workerId}`, WORKER_CHILD);
    child.onNotice((notice) => this.#onNotice(notice as UploadNotice));
    this.#children.set(plan.workerId, child);
    await child.request<void>({ kind: 'start', ...plan });
  }

  #onNotice(notice: UploadNotice): void {
    this.#record.uploads.push(notice);
    const armed = this.#armed;
    if (armed === undefined || armed.workerId !== notice.workerId) return;
    if (notice.phase === 'start' && armed.upload === undefined && notice.bytes >= armed.bytes) {
      armed.upload = notice;
      armed.chunks.clear();
      if (this.#timing.kind === 'files')
        this.#watchFiles(armed, join(this.#timing.dirOf(notice.workerId), notice.jobId, notice.taskId));
    } else if (notice.phase !== 'start' && armed.upload !== undefined && sameUpload(notice, armed.upload)) {
      // It ended before the kill found its moment: wait for the next one.
      armed.upload = undefined;
      armed.watcher?.close();
    }
  }

  #onChunk(subject: string): void {
    const armed = this.#armed;
    if (armed?.upload === undefined) return;
    const seen = (armed.chunks.get(subject) ?? 0) + 1;
    armed.chunks.set(subject, seen);
    if (seen >= KILL_AFTER_CHUNKS) this.#killArmed(armed);
  }

  #watchFiles(armed: Armed, taskDir: string): void {
    try {
      armed.watcher = watch(taskDir, (_event, name) => {
        if (name?.endsWith('.tmp') === true && this.#armed === armed) this.#killArmed(armed);
      });
      armed.watcher.on('error', () => this.#killArmed(armed));
    } catch {
      // The task's first upload: its directory is not there yet to watch.
      this.#killArmed(armed);
    }
  }

  #killArmed(armed: Armed): void {
    const child = this.#children.get(armed.workerId);
    const upload = armed.upload;
    if (child === undefined || upload === undefined) return;
    this.#armed = undefined;
    armed.watcher?.close();
    void child.kill().then(() => armed.killed({ workerId: armed.workerId, upload, unfinished: true }));
  }
}

function sameUpload(a: UploadNotice, b: UploadNotice): boolean {
  return a.workerId === b.workerId && a.taskId === b.taskId && a.checkpointId === b.checkpointId && a.epoch === b.epoch;
}

/**
 * Follows the job's checkpoint events into `record` until `signal` aborts;
 * never rejects: a failed stream is kept in `record`, whose waits then fail.
 */
export async function watchOutcomes(
  query: QueryClient,
  jobId: string,
  record: RunRecord,
  signal: AbortSignal,
): Promise<void> {
  try {
    for await (const summary of query.watchCheckpoints({ jobId }, { signal })) record.note(summary);
  } catch (err) {
    if (!signal.aborted) record.fail(err);
  }
}

/**
 * Runs the job with faults until `targets` are reached: kills spread over
 * the completed checkpoints, alternating between the workers, each
 * followed by a restart and the job running again.
 */
export async function runWithFaults(
  client: CoordinatorClient,
  jobId: string,
  tasks: number,
  workers: OrphanWorkers,
  workerIds: readonly string[],
  record: RunRecord,
  targets: RunTargets,
  log: (line: string) => void,
): Promise<void> {
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  const spacing = Math.max(1, Math.floor(targets.completed / (targets.kills + 1)));
  for (let k = 0; k < targets.kills; k++) {
    await record.until(() => record.completed >= (k + 1) * spacing, deadline, `kill ${k + 1}`);
    const workerId = workerIds[k % workerIds.length] ?? '';
    const kill = await workers.killDuringUpload(workerId, targets.killUploadBytes, deadline);
    log(
      `killed ${workerId} during the upload of ${kill.upload.taskId}'s ${kill.upload.bytes} B piece of checkpoint ` +
        `${kill.upload.checkpointId} (${kill.unfinished ? 'unfinished' : 'it had finished'}); restarted; ${record.summary()}`,
    );
    await waitRunning(client, jobId, tasks);
  }
  await record.until(
    () => record.completed >= targets.completed && record.aborted >= targets.aborted,
    deadline,
    `${targets.completed} completed and ${targets.aborted} aborted checkpoints`,
  );
}
