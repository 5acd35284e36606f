/**
 * The snapshots of one task: the synchronous part (serialise the state,
 * forward the barrier on every output), then the asynchronous part (store
 * the bytes, hand the acknowledgement or decline to the batcher). In
 * unaligned mode the synchronous part happens at the first barrier and the
 * store waits until the last one, recording the in-flight records meanwhile.
 */
import { CkptError } from '../core/errors.js';
import type { SnapshotType } from '../gen/ckpt/v1/SnapshotType.js';
import type { Logger } from '../log/index.js';
import type { TaskResult } from '../worker-protocol/index.js';
import { snapshotContext } from './context.js';
import type { DataPlane } from './data-plane.js';
import { elapsedMs, uploadSnapshot, type SnapshotUpload } from './snapshot-upload.js';
import { encodeKeyedState, type KeyedState, type StateBackend } from './state/index.js';
import type { AnyTask, SourcePosition, TaskContext } from './task.js';
import { encodeUnalignedSnapshot, InFlightRecorder, type InFlightRecord } from './unaligned-snapshot.js';

/** A snapshot a task took (before it is stored). */
export interface SnapshotEvent {
  taskId: string;
  checkpointId: number;
  epoch: number;
  /** The task's own state (without in-flight records). */
  bytes: Uint8Array;
}

/** What a snapshotter works with. */
export interface SnapshotterOptions {
  jobId: string;
  taskId: string;
  task: AnyTask;
  outputs: readonly string[];
  plane: DataPlane;
  backend: StateBackend;
  logger: Logger;
  /** True while the task is still in the run (`generation`) a snapshot was taken in. */
  isCurrent(generation: number): boolean;
  onResult(checkpointId: number, epoch: number, result: TaskResult): void;
  onSnapshot(event: SnapshotEvent): void;
}

/** Where the task is when it snapshots. */
export interface SnapshotPoint {
  checkpointId: number;
  epoch: number;
  /** The run the task is in; a result of an ended run is dropped. */
  generation: number;
  context: TaskContext;
  /** Records processed since the previous snapshot. */
  processedRecords: number;
  /** Source positions (sources only). */
  positions: readonly SourcePosition[];
}

interface Taken extends SnapshotPoint {
  bytes: Uint8Array;
  syncMs: number;
}

/** Takes, stores and reports one task's snapshots. */
export class Snapshotter {
  readonly #o: SnapshotterOptions;
  readonly #types = new Map<number, SnapshotType>();
  readonly #inFlight = new InFlightRecorder<Taken>();
  readonly #uploads = new Set<Promise<void>>();
  /** Snapshots in progress: when each began its synchronous part or, unaligned, its store. */
  readonly #running = new Map<number, number>();

  /** See `SnapshotterOptions`. */
  constructor(options: SnapshotterOptions) {
    this.#o = options;
  }

  /** The oldest snapshot in progress and when it began (`performance.now()`), if any. */
  inProgress(): { checkpointId: number; since: number } | undefined {
    let oldest: { checkpointId: number; since: number } | undefined;
    for (const [checkpointId, since] of this.#running) {
      if (oldest === undefined || since < oldest.since) oldest = { checkpointId, since };
    }
    return oldest;
  }

  /** Remembers the snapshot type the first barrier or trigger of `checkpointId` named. */
  noteType(checkpointId: number, snapshotType: SnapshotType): void {
    if (!this.#types.has(checkpointId)) this.#types.set(checkpointId, snapshotType);
  }

  /** Snapshots now and stores the state asynchronously (aligned, at-least-once, sources). */
  async snapshot(point: SnapshotPoint, alignmentMs: number): Promise<void> {
    const taken = await this.#take(point);
    const { checkpointId, epoch, bytes, syncMs, processedRecords, positions, context, generation } = taken;
    const metrics = { alignmentMs, syncMs, processedRecords };
    const upload = { checkpointId, epoch, bytes, positions, metrics, signal: context.signal };
    this.#track(this.#upload(generation, upload, bytes.length));
  }

  /** Unaligned: snapshots now and records in-flight records until `finish`. */
  async open(point: SnapshotPoint): Promise<void> {
    this.#inFlight.open(point.checkpointId, await this.#take(point));
    // Waiting for the other barriers is not the task's own work: the clock restarts at `finish`.
    this.#running.delete(point.checkpointId);
  }

  /** Unaligned: `record` is in flight for `checkpointIds`. */
  recordInFlight(checkpointIds: readonly number[], record: InFlightRecord): void {
    this.#inFlight.record(checkpointIds, record);
  }

  /** Unaligned: the last barrier arrived; stores the state with its in-flight records. */
  finish(checkpointId: number, alignmentMs: number): void {
    const open = this.#inFlight.take(checkpointId);
    if (open === undefined) return;
    this.#running.set(checkpointId, performance.now());
    const { epoch, bytes, syncMs, processedRecords, context, generation } = open.taken;
    const metrics = { alignmentMs, syncMs, processedRecords, inFlightBytes: open.inFlightBytes };
    const envelope = encodeUnalignedSnapshot(bytes, open.inFlight);
    const upload = { checkpointId, epoch, bytes: envelope, positions: [], metrics, signal: context.signal };
    this.#track(this.#upload(generation, upload, bytes.length));
  }

  /** Forgets checkpoint `checkpointId` (or every one up to it with `upTo`): aborted or cancelled. */
  drop(checkpointId: number, upTo = false): void {
    this.#inFlight.drop(checkpointId, upTo);
    for (const id of [...this.#types.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#types.delete(id);
    for (const id of [...this.#running.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#running.delete(id);
  }

  /** Forgets everything not stored yet (the task's run ended). */
  clear(): void {
    this.#types.clear();
    this.#inFlight.clear();
    this.#running.clear();
  }

  /** Resolves when the stores in progress have settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#uploads]);
  }

  /** Serialises the state, forwards the barrier on every output, and measures. */
  async #take(point: SnapshotPoint): Promise<Taken> {
    const { checkpointId, epoch, context } = point;
    const started = performance.now();
    this.#running.set(checkpointId, started);
    let bytes: Uint8Array;
    try {
      const task = this.#o.task;
      bytes =
        task.snapshot === undefined
          ? keyedStateBytes(context.state)
          : await task.snapshot(snapshotContext(context, checkpointId));
    } catch (err) {
      this.#running.delete(checkpointId);
      const message = `snapshot failed: ${CkptError.from(err).message}`;
      this.#o.onResult(checkpointId, epoch, { kind: 'decline', taskId: this.#o.taskId, message });
      throw err;
    }
    const syncMs = elapsedMs(started);
    const snapshotType = this.#types.get(checkpointId) ?? 'SNAPSHOT_TYPE_FULL';
    for (const id of [...this.#types.keys()]) if (id <= checkpointId) this.#types.delete(id);
    const barrier = { jobId: this.#o.jobId, checkpointId, epoch, snapshotType };
    this.#o.plane.publishBarrier(this.#o.taskId, this.#o.outputs, barrier);
    this.#o.onSnapshot({ taskId: this.#o.taskId, checkpointId, epoch, bytes });
    return { ...point, bytes, syncMs };
  }

  async #upload(generation: number, u: Omit<SnapshotUpload, 'jobId' | 'taskId'>, stateBytes: number): Promise<void> {
    const { checkpointId, epoch } = u;
    const taskId = this.#o.taskId;
    try {
      const snapshot = await uploadSnapshot(this.#o.backend, { ...u, jobId: this.#o.jobId, taskId }, stateBytes);
      if (this.#o.isCurrent(generation)) this.#o.onResult(checkpointId, epoch, { kind: 'ack', taskId, snapshot });
    } catch (err) {
      if (!this.#o.isCurrent(generation)) return;
      const message = `snapshot upload failed: ${CkptError.from(err).message}`;
      this.#o.logger.warn({ err, checkpointId }, 'snapshot upload failed; declining');
      this.#o.onResult(checkpointId, epoch, { kind: 'decline', taskId, message });
    } finally {
      this.#running.delete(checkpointId);
    }
  }

  #track(upload: Promise<void>): void {
    this.#uploads.add(upload);
    void upload.finally(() => this.#uploads.delete(upload));
  }
}

/**
 * The snapshot bytes of a task's keyed state; none for an empty state, so
 * that stateless tasks (sources, most of the time) store nothing at each
 * checkpoint. An empty snapshot restores as a fresh, empty state.
 */
function keyedStateBytes(state: KeyedState): Uint8Array {
  return state.size === 0 ? new Uint8Array(0) : encodeKeyedState(state);
}
