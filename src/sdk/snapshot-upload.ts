/**
 * The asynchronous part of a task's snapshot: storing the bytes in the
 * state backend and building the `TaskSnapshot` its acknowledgement
 * carries, with the measured times and sizes.
 */
import { CkptError } from '../core/errors.js';
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { StateBackend } from './state/index.js';
import type { SourcePosition } from './task.js';
import { decodeUnalignedSnapshot, type InFlightRecord } from './unaligned-snapshot.js';

/** The measurements taken before the upload. */
export interface SyncMetrics {
  alignmentMs: number;
  syncMs: number;
  processedRecords: number;
  /** Bytes of in-flight records stored with the state (unaligned mode). */
  inFlightBytes?: number;
}

/** One snapshot to store. */
export interface SnapshotUpload {
  jobId: string;
  taskId: string;
  checkpointId: number;
  epoch: number;
  bytes: Uint8Array;
  positions: readonly SourcePosition[];
  metrics: SyncMetrics;
  /** Aborts the upload (the task's epoch ended). */
  signal: AbortSignal;
}

/** The handle of an empty snapshot: nothing is stored, the uri is empty. */
export function emptyStateHandle(): StateHandle__Output {
  return {
    uri: '',
    sizeBytes: 0,
    checksum: '',
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
  };
}

/**
 * Stores the bytes (an empty snapshot is not stored) and resolves with the
 * task's entry of the acknowledgement; `stateSizeBytes` is the size of the
 * task's own state within them. Rejects with the backend's `CkptError`.
 */
export async function uploadSnapshot(
  backend: StateBackend,
  upload: SnapshotUpload,
  stateSizeBytes = upload.bytes.length,
): Promise<TaskSnapshot> {
  const { jobId, taskId, checkpointId, epoch, bytes } = upload;
  const started = performance.now();
  let state: StateHandle__Output;
  try {
    state =
      bytes.length === 0
        ? emptyStateHandle()
        : await backend.put({ jobId, taskId, checkpointId, epoch }, bytes, upload.signal);
  } catch (err) {
    throw CkptError.from(err);
  }
  return {
    taskId,
    state,
    positions: upload.positions.map((p) => ({ input: p.input, offset: p.offset })),
    metrics: {
      ...upload.metrics,
      asyncMs: elapsedMs(started),
      stateSizeBytes,
      persistedBytes: Number(state.sizeBytes),
      inFlightBytes: upload.metrics.inFlightBytes ?? 0,
    },
  };
}

/**
 * Fetches and verifies the bytes a restored snapshot of job `jobId` names;
 * undefined when there is none (no entry, or an empty uri). The backend
 * refuses a handle of another job or outside its own store.
 */
export async function fetchSnapshot(
  backend: StateBackend,
  state: StateHandle__Output | null | undefined,
  signal: AbortSignal,
  jobId: string,
): Promise<Uint8Array | undefined> {
  if (state === null || state === undefined || state.uri === '') return undefined;
  return backend.get(state, signal, { jobId });
}

/**
 * The state a task restores from its stored snapshot: the state bytes
 * (undefined for none: no snapshot, or an empty one, stored alone or in an
 * unaligned envelope) and, for a reader's unaligned snapshot (`unaligned`),
 * the in-flight records it holds, to be processed before anything new.
 */
export async function restoredState(
  backend: StateBackend,
  state: StateHandle__Output | null | undefined,
  signal: AbortSignal,
  options: { jobId: string; unaligned: boolean },
): Promise<{ state: Uint8Array | undefined; inFlight: InFlightRecord[] }> {
  const stored = await fetchSnapshot(backend, state, signal, options.jobId);
  if (stored === undefined) return { state: undefined, inFlight: [] };
  const decoded = options.unaligned ? decodeUnalignedSnapshot(stored) : { state: stored, inFlight: [] };
  return { state: decoded.state.length > 0 ? decoded.state : undefined, inFlight: decoded.inFlight };
}

/** Whole milliseconds since `started` (a `performance.now()` reading). */
export function elapsedMs(started: number): number {
  return Math.max(0, Math.round(performance.now() - started));
}
