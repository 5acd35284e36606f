/**
 * The contract every snapshot store of the worker SDK fulfils: a task's
 * snapshot goes in as bytes and comes back as a `StateHandle`; the handle
 * brings the same bytes back, verified, on recovery.
 */
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import type { SnapshotOwner } from './snapshot-location.js';

/** Which snapshot a `put` stores: one per job, task, checkpoint and epoch. */
export interface SnapshotKey {
  /** The job's id (`ID_PATTERN`). */
  jobId: string;
  /** The task's id (`ID_PATTERN`). */
  taskId: string;
  /** The checkpoint the snapshot belongs to; a non-negative safe integer. */
  checkpointId: number;
  /** The epoch the snapshot was taken in; a non-negative safe integer. */
  epoch: number;
}

/** What a `discard` did: how many pieces went, and which uris it left alone and why. */
export interface DiscardOutcome {
  deleted: number;
  left: Array<{ uri: string; why: string }>;
}

/** A snapshot piece found in a backend. */
export interface ListedPiece {
  uri: string;
  /** When it was last written, milliseconds since the Unix epoch. */
  modifiedAtMs: number;
}

/**
 * Where snapshots live.
 *
 * Every method rejects with a `CkptError` only:
 * - `MALFORMED`: a bad key, or a handle that is not this backend's (wrong
 *   scheme, unparsable checksum or size, a place outside the backend's
 *   directory or bucket, another job's snapshot);
 * - `INTERNAL`, not retryable: a snapshot that is missing (message
 *   `snapshot <uri> is missing`) or corrupt (`snapshot <uri> is corrupt: …`),
 *   or an unexpected failure of the store;
 * - `UNAVAILABLE`: the store cannot be reached or is out of space;
 *   `retryable` says whether trying again later may help;
 * - `CHECKPOINT_ABORTED`: `signal` aborted a `put`; `SHUTTING_DOWN`:
 *   `signal` aborted a `get`, or the backend is closed. When the signal's
 *   reason is itself a `CkptError`, that error is thrown instead.
 */
export interface StateBackend {
  /**
   * Stores `bytes` for `key`; resolves with the handle once the bytes are
   * durable. Hashing and writing are streamed in slices, so the caller's
   * event loop is never blocked for long. `bytes` must not change until the
   * promise settles. Storing the same key again replaces the snapshot.
   */
  put(key: SnapshotKey, bytes: Uint8Array, signal?: AbortSignal): Promise<StateHandle__Output>;
  /**
   * Fetches the bytes of a handle this backend produced and verifies their
   * size and checksum before resolving. Handles come from restore commands,
   * that is from what workers acknowledged: a handle naming anything but a
   * snapshot in the backend's own directory or bucket (and, with `owner`, a
   * snapshot of that job) is refused as MALFORMED without being read, and
   * what is not a regular file is refused without blocking.
   */
  get(handle: StateHandle__Output, signal?: AbortSignal, owner?: SnapshotOwner): Promise<Uint8Array>;
  /**
   * Deletes the pieces `uris` name that are snapshots of `jobId` in this
   * backend's own directory or bucket. Every other uri (another backend's,
   * a place outside, another job's, a malformed one) is left alone and
   * reported, and so is one whose deletion failed; a missing piece counts
   * as deleted. Rejects only when the backend is closed. The coordinator
   * decides what goes (`DiscardCommand`); this only carries it out.
   */
  discard(jobId: string, uris: readonly string[]): Promise<DiscardOutcome>;
  /**
   * The snapshot pieces of `jobId` in this backend, with the time each was
   * last written, for the coordinator to judge (`StateListing`).
   */
  listPieces(jobId: string): Promise<ListedPiece[]>;
  /**
   * Optional: deletes the temporary files of `jobId`'s uploads that were
   * not written to for `olderThanMs` (uploads a crash interrupted; no
   * handle can name them); resolves with how many and how many bytes.
   */
  discardStaleUploads?(jobId: string, olderThanMs: number): Promise<{ deleted: number; bytes: number }>;
  /**
   * Waits for the calls in progress to settle and refuses new ones. Does not
   * close connections the backend was given.
   */
  close(): Promise<void>;
}
