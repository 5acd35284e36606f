/**
 * The checksum of a snapshot: `sha256:<64 lower-case hex digits>` over its
 * bytes, computed in slices so that a large snapshot never blocks the event
 * loop for long.
 */
import { createHash, type Hash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** What every checksum a backend writes starts with. */
export const CHECKSUM_PREFIX = 'sha256:';

/**
 * Bytes hashed, written or read between two turns of the event loop. Hashing
 * 1 MiB takes about a millisecond.
 */
export const SLICE_BYTES = 1_048_576;

const HEX_DIGEST = /^[0-9a-f]{64}$/;

/** `sha256:<hex>` of a finished hash. */
export function formatChecksum(hash: Hash): string {
  return `${CHECKSUM_PREFIX}${hash.digest('hex')}`;
}

/** The hex digest of a `sha256:<hex>` checksum; `undefined` when it is not one. */
export function parseChecksum(checksum: string): string | undefined {
  if (!checksum.startsWith(CHECKSUM_PREFIX)) return undefined;
  const hex = checksum.slice(CHECKSUM_PREFIX.length).toLowerCase();
  return HEX_DIGEST.test(hex) ? hex : undefined;
}

/** Consecutive views of at most `sliceBytes` bytes of `bytes`, without copying. */
export function* slices(bytes: Uint8Array, sliceBytes: number = SLICE_BYTES): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += sliceBytes) {
    yield bytes.subarray(offset, Math.min(offset + sliceBytes, bytes.length));
  }
}

/**
 * The `sha256:<hex>` checksum of `bytes`, hashed one slice per turn of the
 * event loop. Rejects with whatever `onSlice` throws, which is called
 * before every slice (to check an abort signal, for instance).
 */
export async function sha256Checksum(bytes: Uint8Array, onSlice?: () => void): Promise<string> {
  const hash = createHash('sha256');
  let first = true;
  for (const slice of slices(bytes)) {
    if (!first) await nextTurn();
    first = false;
    onSlice?.();
    hash.update(slice);
  }
  return formatChecksum(hash);
}
