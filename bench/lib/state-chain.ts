/**
 * One task's keyed state driven through the SDK's checkpoint path, in this
 * process: `IncrementalState.snapshot` (the synchronous part), then
 * `uploadSnapshot` into a real `StateBackend` (the asynchronous part), and
 * back through `restoredState` and `IncrementalState.restore`, as a worker
 * does. Each checkpoint completes before the next is taken, so every delta
 * builds on the one before it and the chain grows by one piece per
 * checkpoint.
 */
import { performance } from 'node:perf_hooks';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { restoredState, uploadSnapshot } from '../../src/sdk/snapshot-upload.js';
import { IncrementalState, piecesOf } from '../../src/sdk/state/incremental-state.js';
import type { KeyedState } from '../../src/sdk/state/keyed-state.js';
import { pieceOwner } from '../../src/sdk/state/snapshot-location.js';
import type { StateBackend } from '../../src/sdk/state/state-backend.js';
import type { PieceKind } from '../../src/sdk/state/state-piece.js';

/** The task whose state is checkpointed. */
export interface StateTask {
  backend: StateBackend;
  jobId: string;
  taskId: string;
}

/** What one checkpoint measured. */
export interface CheckpointFigures {
  checkpointId: number;
  kind: PieceKind;
  /** The `IncrementalState.snapshot` call, in ms. */
  syncMs: number;
  /** The `uploadSnapshot` call, in ms. */
  asyncMs: number;
  /** `persisted_bytes` of the acknowledgement: what this checkpoint stored. */
  persistedBytes: number;
  /** `state_size_bytes` of the acknowledgement: the whole state's logical size. */
  stateSizeBytes: number;
  /** The handle the acknowledgement names: the new piece and the ones it builds on. */
  handle: StateHandle__Output;
}

/** The tracker a task of `task` keeps, as the task runner builds it: it owns the pieces of its own job and task. */
export function taskTracker(task: StateTask): IncrementalState {
  return new IncrementalState({
    owns: (uri) => {
      const owner = pieceOwner(uri);
      return owner?.jobId === task.jobId && owner.taskId === task.taskId;
    },
  });
}

/** Takes and stores checkpoint `checkpointId` of `state`, and marks it completed. */
export async function checkpoint(
  task: StateTask,
  tracker: IncrementalState,
  state: KeyedState,
  checkpointId: number,
  full: boolean,
): Promise<CheckpointFigures> {
  const syncBegan = performance.now();
  const piece = tracker.snapshot(state, checkpointId, { full });
  const syncMs = performance.now() - syncBegan;
  const asyncBegan = performance.now();
  const snapshot = await uploadSnapshot(
    task.backend,
    {
      jobId: task.jobId,
      taskId: task.taskId,
      checkpointId,
      epoch: 1,
      bytes: piece.bytes ?? new Uint8Array(0),
      shared: piece.shared,
      snapshotType: piece.kind === 'full' ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_INCREMENTAL',
      // The default codec; compressing counts as the asynchronous part, as in a worker.
      codec: 'lz4',
      positions: [],
      metrics: { alignmentMs: 0, syncMs: Math.round(syncMs), processedRecords: 0 },
      signal: new AbortController().signal,
    },
    piece.logicalBytes,
  );
  const asyncMs = performance.now() - asyncBegan;
  const { state: handle, metrics } = snapshot;
  if (handle === null || metrics === null) throw new Error(`checkpoint ${checkpointId}: no handle or metrics`);
  tracker.stored(checkpointId, handle);
  tracker.completed(checkpointId);
  return {
    checkpointId,
    kind: piece.kind,
    syncMs,
    asyncMs,
    persistedBytes: metrics.persistedBytes,
    stateSizeBytes: metrics.stateSizeBytes,
    handle,
  };
}

/**
 * Restores the state of checkpoint `checkpointId` from `handle` as a
 * restarting task does: fetches and verifies every piece through
 * `restoredState`, then rebuilds the state with a new tracker.
 */
export async function restore(task: StateTask, checkpointId: number, handle: StateHandle__Output): Promise<KeyedState> {
  const options = { jobId: task.jobId, unaligned: false, chain: true };
  const { pieces } = await restoredState(task.backend, handle, new AbortController().signal, options);
  return taskTracker(task).restore(checkpointId, handle, pieces);
}

/** The pieces `handle` names, oldest first, with their total size. */
export function chainOf(handle: StateHandle__Output): { pieces: StateHandle__Output[]; bytes: number } {
  const pieces = piecesOf(handle);
  return { pieces, bytes: pieces.reduce((n, p) => n + Number(p.sizeBytes), 0) };
}
