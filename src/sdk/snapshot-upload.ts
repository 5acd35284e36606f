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
import { pieceOwner } from './state/snapshot-location.js';
import type { SourcePosition } from './task.js';
import { decodeUnalignedSnapshot, hasUnalignedHeader, type InFlightRecord } from './unaligned-snapshot.js';

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

/** How `restoredState` reads a task's pieces. */
export interface RestoreOptions {
  /** The restoring job. */
  jobId: string;
  /** The job of the savepoint the restored checkpoint maps ('' or undefined: a checkpoint of `jobId` itself). */
  sourceJobId?: string | undefined;
  /** The job's mode is UNALIGNED and the task has inputs (see `unmarkedHoldsInFlight`). */
  unaligned: boolean;
  /** Every piece of the chain (keyed state), not only the newest (a task's own snapshot). */
  chain: boolean;
}

/**
 * Fetches, verifies and decompresses the pieces a restored snapshot of
 * job `jobId` names (only its newest with `chain` false: a task writing its own
 * snapshot stores one piece), oldest first, and decodes them. The backend
 * refuses a handle of another job or outside its own store. A piece whose
 * handle says `in_flight_records` holds in-flight records besides its state
 * (an unaligned snapshot, or an aligned one whose alignment timed out);
 * only those of the newest piece are the checkpoint's (a checkpoint never
 * names another's such piece as its newest). A piece whose handle does not
 * say so holds plain state, except where `unmarkedHoldsInFlight` is certain
 * that it was stored before handles said so.
 */
export async function restoredState(
  backend: StateBackend,
  state: StateHandle__Output | null | undefined,
  signal: AbortSignal,
  options: RestoreOptions,
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
    const handle = handles[i] as StateHandle__Output;
    const envelope = handle.inFlightRecords === true || unmarkedHoldsInFlight(handle, bytes, options);
    const decoded = envelope ? decodeUnalignedSnapshot(bytes) : { state: bytes, inFlight: [] };
    if (i === stored.length - 1) inFlight = decoded.inFlight;
    if (decoded.state.length > 0) pieces.push(decoded.state);
  });
  return { pieces, inFlight };
}

/**
 * Whether a piece whose handle does not say `in_flight_records` holds
 * in-flight records all the same: stored before handles said so. Such a
 * piece holds them exactly when a task with inputs of an UNALIGNED job
 * stored it (every version of the SDK stored each of those snapshots with
 * its in-flight records, and no other); pieces stored since then say so.
 * The handle cannot tell an old piece from a new plain one, so this answers
 * true only where that is certain, in a task with inputs of an UNALIGNED
 * job (`unaligned`), as before handles said so:
 *
 * - keyed state (`chain`): when the piece starts with the header of
 *   in-flight records, which a piece of keyed state never does;
 * - a task's own snapshot: when the restore is of one of the job's own
 *   checkpoints (no savepoint) and the piece is the job's. The task stored
 *   it in this job (its newest piece, the only one read, is always new),
 *   and the job has been UNALIGNED since it was created, since a job's spec
 *   never changes. A savepoint may come from a job of another mode (an
 *   ALIGNED job's pieces hold plain state): its unmarked pieces are plain.
 */
function unmarkedHoldsInFlight(handle: StateHandle__Output, bytes: Uint8Array, options: RestoreOptions): boolean {
  if (!options.unaligned) return false;
  if (options.chain) return hasUnalignedHeader(bytes);
  const ownCheckpoint = (options.sourceJobId ?? '') === '';
  return ownCheckpoint && pieceOwner(handle.uri)?.jobId === options.jobId;
}

/** Whole milliseconds since `started` (a `performance.now()` reading). */
export function elapsedMs(started: number): number {
  return Math.max(0, Math.round(performance.now() - started));
}
