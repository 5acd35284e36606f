/**
 * The asynchronous part of a task's snapshot: storing the bytes in the
 * state backend and building the `TaskSnapshot` its acknowledgement
 * carries, with the measured times and sizes.
 */
import { CkptError } from '../core/errors.js';
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { SnapshotType__Output } from '../gen/ckpt/v1/SnapshotType.js';
import type { StateBackend } from './state/index.js';
import { decodeStoredPiece, describePiece, encodePiece, type PieceCodec } from './state/compression.js';
import { handleOf, piecesOf } from './state/incremental-state.js';
import type { SourcePosition } from './task.js';
import { decodeUnalignedSnapshot, type InFlightRecord } from './unaligned-snapshot.js';

/** The measurements taken before the upload. */
export interface SyncMetrics {
  alignmentMs: number;
  syncMs: number;
  processedRecords: number;
  /** Trigger to the task starting the checkpoint; 0 when not measured. */
  startDelayMs?: number;
  /** Bytes of in-flight records stored with the state (unaligned mode). */
  inFlightBytes?: number;
}

/** One snapshot to store. */
export interface SnapshotUpload {
  jobId: string;
  taskId: string;
  checkpointId: number;
  epoch: number;
  /** The new piece; empty when nothing is stored. */
  bytes: Uint8Array;
  /** The pieces the snapshot builds on, oldest first. */
  shared: StateHandle__Output[];
  snapshotType: SnapshotType__Output;
  /** How the new piece is compressed (stored as it is when that does not make it smaller). */
  codec: PieceCodec;
  positions: readonly SourcePosition[];
  metrics: SyncMetrics;
  /** The new piece holds in-flight records (`encodeUnalignedSnapshot`): its handle says so. */
  inFlight?: boolean;
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
    inFlightRecords: false,
  };
}

/**
 * Stores the new piece and resolves with the task's entry of the
 * acknowledgement: its handle names the piece and the shared ones it
 * builds on. Without a new piece nothing is stored: the handle names the
 * shared pieces alone (nothing changed since the base), or nothing (the
 * state is empty). `stateSizeBytes` is the size of the task's whole state,
 * `persisted_bytes` what this checkpoint stored. Rejects with the
 * backend's `CkptError`.
 */
export async function uploadSnapshot(
  backend: StateBackend,
  upload: SnapshotUpload,
  stateSizeBytes = upload.bytes.length,
): Promise<TaskSnapshot__Output> {
  const { jobId, taskId, checkpointId, epoch, bytes } = upload;
  const started = performance.now();
  let state: StateHandle__Output;
  try {
    if (bytes.length > 0) {
      const encoded = await encodePiece(upload.codec, bytes, { jobId, taskId, checkpointId });
      const stored = await backend.put({ jobId, taskId, checkpointId, epoch }, encoded.bytes, upload.signal);
      // A backend may itself build the piece on others: they come after the ones the snapshot shares.
      const piece = describePiece(stored, encoded);
      if (upload.inFlight === true) piece.inFlightRecords = true;
      state = handleOf([...upload.shared, ...piecesOf(piece)]) ?? emptyStateHandle();
    } else {
      state = handleOf(upload.shared) ?? emptyStateHandle();
    }
  } catch (err) {
    throw CkptError.from(err);
  }
  const persistedBytes = bytes.length > 0 ? Number(state.sizeBytes) : 0;
  return {
    taskId,
    state,
    snapshotType: upload.snapshotType,
    positions: upload.positions.map((p) => ({ input: p.input, offset: p.offset })),
    metrics: {
      startDelayMs: 0,
      ...upload.metrics,
      asyncMs: elapsedMs(started),
      stateSizeBytes,
      persistedBytes,
      inFlightBytes: upload.metrics.inFlightBytes ?? 0,
    },
  };
}

/** Pieces fetched at once in a restore. */
const RESTORE_CONCURRENCY = 4;

/** What a task restores from its stored snapshot. */
export interface RestoredPieces {
  /** The state bytes of each piece, oldest first; empty pieces left out. */
  pieces: Uint8Array[];
  /** The in-flight records of the newest piece, when it holds any (an unaligned snapshot). */
  inFlight: InFlightRecord[];
}

/**
 * Fetches, verifies and decompresses the pieces a restored snapshot of
 * job `jobId` names (only its newest with `chain` false: a task writing its own
 * snapshot stores one piece), oldest first, and decodes them. The backend
 * refuses a handle of another job or outside its own store. A piece whose
 * handle says `in_flight_records` holds in-flight records besides its state
 * (an unaligned snapshot, or an aligned one whose alignment timed out);
 * only those of the newest piece are the checkpoint's (a checkpoint never
 * names another's such piece as its newest). `unaligned`: the job's mode is
 * UNALIGNED, whose every piece holds them (also those stored before handles
 * said so).
 */
export async function restoredState(
  backend: StateBackend,
  state: StateHandle__Output | null | undefined,
  signal: AbortSignal,
  options: { jobId: string; sourceJobId?: string; unaligned: boolean; chain: boolean },
): Promise<RestoredPieces> {
  const all = piecesOf(state);
  const handles = options.chain ? all : all.slice(-1);
  const stored = new Array<Uint8Array>(handles.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < handles.length; i = next++) {
      const owner = { jobId: options.jobId, sourceJobId: options.sourceJobId };
      const handle = handles[i] as StateHandle__Output;
      stored[i] = await decodeStoredPiece(handle, await backend.get(handle, signal, owner), {
        ids: { jobId: options.jobId },
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(RESTORE_CONCURRENCY, handles.length) }, lane));
  let inFlight: InFlightRecord[] = [];
  const pieces: Uint8Array[] = [];
  stored.forEach((bytes, i) => {
    const envelope = handles[i]?.inFlightRecords === true || options.unaligned;
    const decoded = envelope ? decodeUnalignedSnapshot(bytes) : { state: bytes, inFlight: [] };
    if (i === stored.length - 1) inFlight = decoded.inFlight;
    if (decoded.state.length > 0) pieces.push(decoded.state);
  });
  return { pieces, inFlight };
}

/** Whole milliseconds since `started` (a `performance.now()` reading). */
export function elapsedMs(started: number): number {
  return Math.max(0, Math.round(performance.now() - started));
}
