/**
 * The snapshots of one task: the synchronous part (serialise the state,
 * forward the barrier on every output), then the asynchronous part (store
 * the bytes, hand the acknowledgement or decline to the batcher). In
 * unaligned mode the synchronous part happens at the first barrier and the
 * store waits until the last one, recording the in-flight records meanwhile;
 * so does an aligned checkpoint whose alignment timed out.
 */
import { CkptError } from '../core/errors.js';
import { CheckpointDeclinedError } from './checkpoint-declined.js';
import type { SnapshotType, SnapshotType__Output } from '../gen/ckpt/v1/SnapshotType.js';
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';
import type { Logger } from '../log/index.js';
import type { TaskResult } from '../worker-protocol/index.js';
import { snapshotContext } from './context.js';
import type { DataPlane } from './data-plane.js';
import type { ContextCell } from './context.js';
import { elapsedMs, restoredState, uploadSnapshot, type SnapshotUpload } from './snapshot-upload.js';
import type { RestoreRequest } from './runner-options.js';
import type { StateBackend } from './state/index.js';
import type { PieceCodec } from './state/compression.js';
import type { KeyGroupRange } from '../core/key-groups.js';
import { IncrementalState } from './state/incremental-state.js';
import { pieceOwner } from './state/snapshot-location.js';
import type { AnyTask, SourcePosition, TaskContext } from './task.js';
import { startDelayMs } from './trigger-times.js';
import { encodeUnalignedSnapshot, InFlightRecorder, type InFlightRecord } from './unaligned-snapshot.js';

/** A snapshot a task took (before it is stored). */
export interface SnapshotEvent {
  taskId: string;
  checkpointId: number;
  epoch: number;
  /**
   * The new piece of the task's state (without in-flight records): all of
   * it for a full snapshot, the changes since the base for a delta; empty
   * when nothing is stored.
   */
  bytes: Uint8Array;
  /** Whether the task stored its whole state or built on earlier pieces. */
  snapshotType: SnapshotType__Output;
}

/** What a snapshotter works with. */
export interface SnapshotterOptions {
  jobId: string;
  taskId: string;
  task: AnyTask;
  outputs: readonly string[];
  plane: DataPlane;
  backend: StateBackend;
  /** The key groups of the task's keyed state (see `src/core/key-groups.ts`). */
  keyGroups: KeyGroupRange;
  /** How pieces are compressed (the job policy's `compression`). */
  codec: PieceCodec;
  logger: Logger;
  /** True while the task is still in the run (`generation`) a snapshot was taken in. */
  isCurrent(generation: number): boolean;
  /** When the coordinator triggered `checkpointId` (its clock, ms); undefined when the worker did not hear. */
  triggeredAtMs(checkpointId: number): number | undefined;
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
  /** When the task started the checkpoint (`Date.now()`): took its first barrier, or the trigger. */
  startedAtMs: number;
  /** Source positions (sources only). */
  positions: readonly SourcePosition[];
}

interface Taken extends SnapshotPoint {
  /** The new piece; empty when nothing is stored. */
  bytes: Uint8Array;
  /** The pieces it builds on, oldest first. */
  shared: StateHandle__Output[];
  snapshotType: SnapshotType__Output;
  /** The type the trigger or barrier asked for. */
  requested: SnapshotType;
  /** The size of the task's whole state. */
  stateBytes: number;
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

  /** The incremental snapshots of the task's keyed state (unused by a task writing its own). */
  readonly #incremental: IncrementalState;

  /** See `SnapshotterOptions`. */
  constructor(options: SnapshotterOptions) {
    this.#o = options;
    this.#incremental = new IncrementalState({
      range: options.keyGroups,
      owns: (uri) => {
        const owner = pieceOwner(uri);
        return owner?.jobId === options.jobId && owner.taskId === options.taskId;
      },
    });
  }

  /** Checkpoint `checkpointId` completed: the pieces it stored are the base of the next deltas. */
  completed(checkpointId: number): void {
    this.#incremental.completed(checkpointId);
  }

  /**
   * Fetches the state a restore names and hands it to the task: its own
   * `restore`, or the keyed state its pieces hold (which makes the restored
   * checkpoint the base of the next deltas). `current` throws when a newer
   * run superseded this one. Resolves with the in-flight records of an
   * unaligned snapshot, to be processed before anything new.
   */
  async restore(
    request: Pick<RestoreRequest, 'checkpointId' | 'snapshot' | 'sourceJobId'>,
    cell: ContextCell,
    how: { signal: AbortSignal; unaligned: boolean },
    current: () => void,
  ): Promise<InFlightRecord[]> {
    const task = this.#o.task;
    const handle = request.snapshot?.state ?? undefined;
    const { jobId } = this.#o;
    const options = {
      jobId,
      sourceJobId: request.sourceJobId,
      unaligned: how.unaligned,
      chain: task.restore === undefined,
    };
    const { pieces, inFlight } = await restoredState(this.#o.backend, handle, how.signal, options);
    current();
    if (task.restore !== undefined) await task.restore(pieces.at(-1), cell.context);
    else cell.setState(this.#incremental.restore(request.checkpointId, handle, pieces));
    return inFlight;
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
    const taken = await this.#take(point, false);
    if (taken === undefined) return;
    const { checkpointId, epoch, bytes, shared, snapshotType, stateBytes, syncMs, processedRecords, positions } = taken;
    const metrics = { alignmentMs, syncMs, processedRecords, startDelayMs: this.#startDelayMs(taken) };
    const upload = {
      checkpointId,
      epoch,
      bytes,
      shared,
      snapshotType,
      positions,
      metrics,
      signal: point.context.signal,
      savepoint: taken.requested === 'SNAPSHOT_TYPE_SAVEPOINT',
    };
    this.#track(this.#upload(point.generation, upload, stateBytes));
  }

  /** Unaligned: snapshots now and records in-flight records until `finish`. */
  async open(point: SnapshotPoint): Promise<void> {
    const taken = await this.#take(point, true);
    if (taken !== undefined) this.#inFlight.open(point.checkpointId, taken);
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
    const { epoch, bytes, shared, snapshotType, stateBytes, syncMs, processedRecords, context, generation } =
      open.taken;
    const metrics = {
      alignmentMs,
      syncMs,
      processedRecords,
      startDelayMs: this.#startDelayMs(open.taken),
      inFlightBytes: open.inFlightBytes,
    };
    const envelope = encodeUnalignedSnapshot(bytes, open.inFlight);
    const upload = {
      checkpointId,
      epoch,
      bytes: envelope,
      shared,
      snapshotType,
      positions: [],
      metrics,
      signal: context.signal,
      savepoint: open.taken.requested === 'SNAPSHOT_TYPE_SAVEPOINT',
      inFlight: true,
    };
    this.#track(this.#upload(generation, upload, stateBytes));
  }

  /** Forgets checkpoint `checkpointId` (or every one up to it with `upTo`): aborted or cancelled. */
  drop(checkpointId: number, upTo = false): void {
    this.#inFlight.drop(checkpointId, upTo);
    this.#incremental.aborted(checkpointId, upTo);
    for (const id of [...this.#types.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#types.delete(id);
    for (const id of [...this.#running.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#running.delete(id);
  }

  /** Forgets everything not stored yet (the task's run ended). */
  clear(): void {
    this.#incremental.reset();
    this.#types.clear();
    this.#inFlight.clear();
    this.#running.clear();
  }

  /** Resolves when the stores in progress have settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#uploads]);
  }

  /**
   * Serialises the state (a task's own snapshot, or a piece of its keyed
   * state; with `newPiece`, a piece even when nothing changed, since an
   * unaligned snapshot always stores its in-flight records), forwards the
   * barrier on every output, and measures.
   */
  async #take(point: SnapshotPoint, newPiece: boolean): Promise<Taken | undefined> {
    const { checkpointId, epoch, context } = point;
    const started = performance.now();
    this.#running.set(checkpointId, started);
    const requested = this.#types.get(checkpointId) ?? 'SNAPSHOT_TYPE_FULL';
    let piece: Pick<Taken, 'bytes' | 'shared' | 'snapshotType' | 'stateBytes'>;
    try {
      const full = requested === 'SNAPSHOT_TYPE_FULL' || requested === 'SNAPSHOT_TYPE_SAVEPOINT';
      piece = await this.#serialise(context, checkpointId, full, newPiece);
    } catch (err) {
      this.#running.delete(checkpointId);
      // A task that declines on purpose goes on; any other error of its snapshot also fails it.
      const declined = err instanceof CheckpointDeclinedError;
      const message = declined ? `declined: ${err.message}` : `snapshot failed: ${CkptError.from(err).message}`;
      this.#o.onResult(checkpointId, epoch, { kind: 'decline', taskId: this.#o.taskId, message });
      if (declined) return undefined;
      throw err;
    }
    const syncMs = elapsedMs(started);
    for (const id of [...this.#types.keys()]) if (id <= checkpointId) this.#types.delete(id);
    const barrier = { jobId: this.#o.jobId, checkpointId, epoch, snapshotType: requested };
    this.#o.plane.publishBarrier(this.#o.taskId, this.#o.outputs, barrier);
    this.#o.onSnapshot({
      taskId: this.#o.taskId,
      checkpointId,
      epoch,
      bytes: piece.bytes,
      snapshotType: piece.snapshotType,
    });
    return { ...point, ...piece, requested, syncMs };
  }

  async #serialise(
    context: TaskContext,
    checkpointId: number,
    full: boolean,
    newPiece: boolean,
  ): Promise<Pick<Taken, 'bytes' | 'shared' | 'snapshotType' | 'stateBytes'>> {
    const task = this.#o.task;
    if (task.snapshot !== undefined) {
      const bytes = await task.snapshot(snapshotContext(context, checkpointId));
      return { bytes, shared: [], snapshotType: 'SNAPSHOT_TYPE_FULL', stateBytes: bytes.length };
    }
    const piece = this.#incremental.snapshot(context.state, checkpointId, { full, newPiece });
    return {
      bytes: piece.bytes ?? new Uint8Array(0),
      shared: piece.shared,
      snapshotType: piece.kind === 'full' ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_INCREMENTAL',
      stateBytes: piece.logicalBytes,
    };
  }

  async #upload(
    generation: number,
    u: Omit<SnapshotUpload, 'jobId' | 'taskId' | 'codec'> & { savepoint: boolean },
    stateBytes: number,
  ): Promise<void> {
    const { checkpointId, epoch } = u;
    const taskId = this.#o.taskId;
    try {
      const upload = { ...u, jobId: this.#o.jobId, taskId, codec: this.#o.codec };
      const snapshot = await uploadSnapshot(this.#o.backend, upload, stateBytes);
      if (!this.#o.isCurrent(generation)) return;
      // A savepoint shares its pieces with no other checkpoint: later deltas never build on it.
      if (snapshot.state !== null && !u.savepoint) this.#incremental.stored(checkpointId, snapshot.state);
      this.#o.onResult(checkpointId, epoch, { kind: 'ack', taskId, snapshot });
    } catch (err) {
      if (!this.#o.isCurrent(generation)) return;
      const message = `snapshot upload failed: ${CkptError.from(err).message}`;
      this.#o.logger.warn({ err, checkpointId }, 'snapshot upload failed; declining');
      this.#o.onResult(checkpointId, epoch, { kind: 'decline', taskId, message });
    } finally {
      this.#running.delete(checkpointId);
    }
  }

  /**
   * Read once the synchronous part is done rather than at the start: a
   * trigger that reached this worker after a barrier of its checkpoint (it
   * travels on another connection) still counts.
   */
  #startDelayMs(point: SnapshotPoint): number {
    return startDelayMs(this.#o.triggeredAtMs(point.checkpointId), point.startedAtMs);
  }

  #track(upload: Promise<void>): void {
    this.#uploads.add(upload);
    void upload.finally(() => this.#uploads.delete(upload));
  }
}
