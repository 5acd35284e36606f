/**
 * Checking bytes against the handle that describes them.
 */
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import { CHECKSUM_PREFIX, sha256Checksum } from './checksum.js';
import { corruptSnapshotError } from './snapshot-errors.js';
import { checkHandle } from './state-handle.js';

/**
 * Resolves when `bytes` have the size and sha256 checksum `handle` states.
 * Rejects with INTERNAL (`snapshot <uri> is corrupt: …`) when they differ,
 * and with MALFORMED when the handle has no valid size or `sha256:` checksum.
 * Hashing is done in slices and does not block the event loop for long.
 */
export async function verifyChecksum(bytes: Uint8Array, handle: StateHandle__Output): Promise<void> {
  const { uri, sizeBytes, digestHex } = checkHandle(handle);
  if (bytes.length !== sizeBytes) {
    throw corruptSnapshotError(uri, `it has ${bytes.length} bytes, the handle says ${sizeBytes}`);
  }
  const actual = await sha256Checksum(bytes);
  const expected = `${CHECKSUM_PREFIX}${digestHex}`;
  if (actual !== expected) throw corruptSnapshotError(uri, `its checksum is ${actual}, the handle says ${expected}`);
}
