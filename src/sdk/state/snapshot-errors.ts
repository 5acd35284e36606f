/**
 * The errors every state backend raises for the same conditions, so that
 * callers see one wording whichever store holds the snapshot.
 */
import { CkptError, type ErrorIds } from '../../core/errors.js';

/** A snapshot that a handle names but the store does not hold (any more). */
export function missingSnapshotError(uri: string, ids: ErrorIds = {}, cause?: unknown): CkptError {
  return new CkptError('INTERNAL', `snapshot ${uri} is missing`, { ...ids, cause });
}

/** A snapshot whose bytes differ from what its handle promises. */
export function corruptSnapshotError(uri: string, problem: string, ids: ErrorIds = {}, cause?: unknown): CkptError {
  return new CkptError('INTERNAL', `snapshot ${uri} is corrupt: ${problem}`, { ...ids, cause });
}

/** A handle this backend cannot read: wrong scheme, size or checksum format. */
export function malformedHandleError(uri: string, problem: string): CkptError {
  return new CkptError('MALFORMED', `state handle ${JSON.stringify(uri)} ${problem}`);
}

/**
 * The error for an operation that `signal` aborted: the signal's reason when
 * it is a `CkptError`, otherwise CHECKPOINT_ABORTED for a `put` (the
 * checkpoint no longer needs it) and SHUTTING_DOWN for anything else.
 */
export function abortedError(signal: AbortSignal, operation: string, uri: string, ids: ErrorIds = {}): CkptError {
  const reason: unknown = signal.reason;
  if (reason instanceof CkptError) return reason;
  const code = operation === 'put' ? 'CHECKPOINT_ABORTED' : 'SHUTTING_DOWN';
  return new CkptError(code, `${operation} of snapshot ${uri} was aborted`, { ...ids, cause: reason });
}

/** Throws `abortedError` when `signal` has been aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, operation: string, uri: string, ids?: ErrorIds): void {
  if (signal?.aborted === true) throw abortedError(signal, operation, uri, ids);
}

/** The error for a call made after `close()`. */
export function closedBackendError(backend: string): CkptError {
  return new CkptError('SHUTTING_DOWN', `the ${backend} state backend is closed`);
}
