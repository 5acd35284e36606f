/**
 * The compressed codecs of snapshot pieces, each off the event loop (zlib's
 * and lz4-napi's thread-pool calls) and each inflating at most the raw size
 * its caller allows, so that a corrupt or hostile piece cannot make a
 * worker allocate more than its handle promised.
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliDecompress, constants } from 'node:zlib';
import { CkptError, type ErrorIds } from '../../core/errors.js';
import { lz4Binding } from './lz4-binding.js';
import { corruptSnapshotError } from './snapshot-errors.js';

/**
 * The Brotli quality pieces are written with. Measured on keyed state
 * (README, compression), quality 2 stores about 10% fewer bytes than
 * quality 1 at about half its speed, while qualities 3 to 5 cost another
 * 2-4x for a few percent.
 */
export const BROTLI_QUALITY = 2;

/**
 * Largest output chunk zlib hands back per thread-pool call: big enough
 * that a 64 MiB piece takes a few dozen round trips to the event loop,
 * small enough to bound what is allocated past the raw size before an
 * overflow is noticed.
 */
export const MAX_ZLIB_CHUNK_BYTES = 1_048_576;

/** The largest piece the LZ4 framing can state the size of (a 32-bit length). */
export const MAX_LZ4_RAW_BYTES = 0xffff_ffff;

/** Length of the raw size that starts every LZ4 piece. */
const LZ4_SIZE_PREFIX_BYTES = 4;

/** Where decompressed bytes go: the handle's uri and ids for errors, and the exact raw size. */
export interface InflateTarget {
  uri: string;
  rawSizeBytes: number;
  ids: ErrorIds;
}

const brotliCompressAsync = promisify(brotliCompress);
const brotliDecompressAsync = promisify(brotliDecompress);

/** zlib's output chunk for about `bytes` bytes of output, within zlib's bounds. */
function zlibChunkBytes(bytes: number): number {
  return Math.min(MAX_ZLIB_CHUNK_BYTES, Math.max(constants.Z_MIN_CHUNK, bytes));
}

/** `bytes` as a Brotli stream of quality `BROTLI_QUALITY`. */
export async function brotliPiece(bytes: Uint8Array): Promise<Uint8Array> {
  return brotliCompressAsync(bytes, {
    chunkSize: zlibChunkBytes(bytes.length),
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}

/**
 * Inflates a Brotli piece, stopping as soon as the output passes the raw
 * size (zlib's `maxOutputLength`): memory stays within the raw size and one
 * chunk whatever the stream claims.
 */
export async function unbrotliPiece(stored: Uint8Array, target: InflateTarget): Promise<Uint8Array> {
  const { uri, rawSizeBytes, ids } = target;
  try {
    return await brotliDecompressAsync(stored, {
      // zlib needs a bound of at least one byte; a byte of an empty piece shows in its length.
      maxOutputLength: Math.max(1, rawSizeBytes),
      chunkSize: zlibChunkBytes(rawSizeBytes),
    });
  } catch (err) {
    if (errorCode(err) === 'ERR_BUFFER_TOO_LARGE') {
      throw corruptSnapshotError(uri, `it inflates to more than its raw size of ${rawSizeBytes} bytes`, ids, err);
    }
    throw corruptSnapshotError(uri, `its Brotli data cannot be decompressed: ${errorText(err)}`, ids, err);
  }
}

/** `bytes` as an LZ4 block after their length; OVERSIZED past 4 GiB - 1. */
export async function lz4Piece(bytes: Uint8Array, ids: ErrorIds): Promise<Uint8Array> {
  if (bytes.length > MAX_LZ4_RAW_BYTES) {
    throw new CkptError('OVERSIZED', `a piece of ${bytes.length} bytes is too large for LZ4 (at most 4 GiB - 1)`, ids);
  }
  return lz4Binding().compress(bytes);
}

/**
 * Inflates an LZ4 piece. The size it starts with must be the raw size, read
 * before anything is allocated; the decoder then writes into exactly that
 * many bytes and fails rather than write past them.
 */
export async function unlz4Piece(stored: Uint8Array, target: InflateTarget): Promise<Uint8Array> {
  const { uri, rawSizeBytes, ids } = target;
  if (stored.length < LZ4_SIZE_PREFIX_BYTES) {
    throw corruptSnapshotError(uri, `its ${stored.length} bytes are too short for an LZ4 piece`, ids);
  }
  const stated = new DataView(stored.buffer, stored.byteOffset, LZ4_SIZE_PREFIX_BYTES).getUint32(0, true);
  if (stated !== rawSizeBytes) {
    throw corruptSnapshotError(uri, `its LZ4 data states ${stated} bytes, the handle says ${rawSizeBytes}`, ids);
  }
  const binding = lz4Binding();
  try {
    return await binding.uncompress(stored);
  } catch (err) {
    throw corruptSnapshotError(uri, `its LZ4 data cannot be decompressed: ${errorText(err)}`, ids, err);
  }
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
