/**
 * Building the `StateHandle` a backend returns, and checking one it is
 * given back before trusting any of its fields.
 */
import { CkptError, type ErrorIds } from '../../core/errors.js';
import { MAX_URI_BYTES } from '../../core/validate.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import { parseChecksum } from './checksum.js';
import { malformedHandleError } from './snapshot-errors.js';

/** A handle whose fields have been checked. */
export interface CheckedHandle {
  uri: string;
  sizeBytes: number;
  /** The expected sha256 digest, 64 lower-case hex digits. */
  digestHex: string;
}

/**
 * Throws OVERSIZED when `uri` is longer than the coordinator accepts in a
 * handle (`MAX_URI_BYTES`); backends check before they write anything.
 */
export function checkUriLength(uri: string, ids: ErrorIds): void {
  if (Buffer.byteLength(uri) > MAX_URI_BYTES) {
    throw new CkptError('OVERSIZED', `snapshot uri ${uri} is longer than ${MAX_URI_BYTES} bytes`, ids);
  }
}

/**
 * The handle of a stored snapshot; it reuses no pieces of other snapshots.
 * A backend stores the bytes it is given, so they are uncompressed as far
 * as it knows; whoever compressed them first sets `compression` and
 * `rawSizeBytes` on the handle it gets back.
 */
export function stateHandle(uri: string, sizeBytes: number, checksum: string): StateHandle__Output {
  return {
    uri,
    sizeBytes,
    checksum,
    shared: [],
    compression: 'STATE_COMPRESSION_NONE',
    rawSizeBytes: sizeBytes,
    inFlightRecords: false,
  };
}

/**
 * Checks that `handle` has a uri (starting with `scheme` when given), a
 * size that is a non-negative safe integer and a `sha256:<hex>` checksum;
 * throws MALFORMED naming the uri otherwise.
 */
export function checkHandle(handle: StateHandle__Output, scheme?: string): CheckedHandle {
  const uri = typeof handle.uri === 'string' ? handle.uri : '';
  if (uri === '') throw malformedHandleError(uri, 'has no uri');
  if (scheme !== undefined && !uri.startsWith(scheme)) throw malformedHandleError(uri, `is not a ${scheme} uri`);
  const sizeBytes = Number(handle.sizeBytes);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw malformedHandleError(uri, `has an invalid size ${String(handle.sizeBytes)}`);
  }
  const digestHex = parseChecksum(String(handle.checksum));
  if (digestHex === undefined) {
    throw malformedHandleError(uri, `has checksum ${JSON.stringify(handle.checksum)}, expected sha256:<64 hex digits>`);
  }
  return { uri, sizeBytes, digestHex };
}
