/**
 * Compression of snapshot pieces: a piece is compressed before a backend's
 * `put` and decompressed after `get` verified the stored bytes against the
 * handle's size and checksum (which are those of the stored, compressed
 * bytes). The handle's `compression` says how to read them, and its
 * `raw_size_bytes` bounds what decompressing may produce: a reader never
 * allocates past it, so a corrupt or hostile piece cannot exhaust memory.
 */
import { constants as bufferConstants } from 'node:buffer';
import { CkptError, type ErrorIds } from '../../core/errors.js';
import {
  isUncompressed,
  resolveStateCompression,
  type ExplicitStateCompression,
} from '../../core/state-compression.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import { brotliPiece, lz4Piece, unbrotliPiece, unlz4Piece, type InflateTarget } from './compression-codecs.js';
import { corruptSnapshotError, malformedHandleError } from './snapshot-errors.js';

/** How a piece is stored: as it is, as an LZ4 block (fast), or as Brotli (smaller). */
export type PieceCodec = 'none' | 'lz4' | 'brotli';

/** Every codec, for option checks and benchmarks. */
export const PIECE_CODECS: readonly PieceCodec[] = Object.freeze(['none', 'lz4', 'brotli']);

/**
 * The largest raw size a reader inflates a piece to unless told otherwise.
 * @default 1 GiB
 */
export const DEFAULT_MAX_RAW_PIECE_BYTES = 1024 ** 3;

/** The largest `maxRawBytes` accepted: one byte less than the largest Buffer. */
export const MAX_RAW_PIECE_BYTES_LIMIT = bufferConstants.MAX_LENGTH - 1;

/** What a reader checks a piece against besides its handle. */
export interface DecompressLimits {
  /** The piece's uri, named in every error. */
  uri: string;
  /** The largest raw size accepted. @default DEFAULT_MAX_RAW_PIECE_BYTES */
  maxRawBytes?: number;
  /** The ids errors carry. */
  ids?: ErrorIds;
}

/** A piece ready for a backend's `put`, and what its handle must say about it. */
export interface EncodedPiece {
  /** The codec `bytes` are in; `none` when compressing did not make them smaller. */
  codec: PieceCodec;
  bytes: Uint8Array;
  rawSizeBytes: number;
}

const CODEC_OF: Readonly<Record<ExplicitStateCompression, PieceCodec>> = {
  STATE_COMPRESSION_NONE: 'none',
  STATE_COMPRESSION_LZ4: 'lz4',
  STATE_COMPRESSION_BROTLI: 'brotli',
};

const COMPRESSION_OF: Readonly<Record<PieceCodec, ExplicitStateCompression>> = {
  none: 'STATE_COMPRESSION_NONE',
  lz4: 'STATE_COMPRESSION_LZ4',
  brotli: 'STATE_COMPRESSION_BROTLI',
};

/**
 * The codec of a `ckpt.v1.StateCompression` value (name or number) of a
 * handle or a policy; UNSPECIFIED, as handles written before compression
 * say, is `none`. Throws MALFORMED naming `field` for an unknown value.
 */
export function pieceCodecOf(compression: unknown, field = 'compression', ids: ErrorIds = {}): PieceCodec {
  const name = resolveStateCompression(compression, field, ids);
  return isUncompressed(name) ? 'none' : CODEC_OF[name];
}

/** The `ckpt.v1.StateCompression` a handle of a piece in `codec` carries. */
export function compressionOf(codec: PieceCodec): ExplicitStateCompression {
  return COMPRESSION_OF[codec];
}

/**
 * `bytes` compressed with `codec` (`none` returns them as they are).
 * Runs on the thread pool, never blocking the event loop for long. The
 * result may be larger than `bytes`; `encodePiece` guards against that.
 */
export async function compressPiece(codec: PieceCodec, bytes: Uint8Array, ids: ErrorIds = {}): Promise<Uint8Array> {
  switch (codec) {
    case 'none':
      return bytes;
    case 'lz4':
      return lz4Piece(bytes, ids);
    case 'brotli':
      return brotliPiece(bytes);
  }
}

/**
 * `raw` compressed with `codec`, or stored as it is (`none`) when that is
 * not smaller, as with random bytes: the handle then says NONE honestly and
 * reading it back costs nothing.
 */
export async function encodePiece(codec: PieceCodec, raw: Uint8Array, ids: ErrorIds = {}): Promise<EncodedPiece> {
  const compressed = await compressPiece(codec, raw, ids);
  if (compressed.length >= raw.length) return { codec: 'none', bytes: raw, rawSizeBytes: raw.length };
  return { codec, bytes: compressed, rawSizeBytes: raw.length };
}

/** `handle` (as a backend's `put` returned it for `piece.bytes`) stating how the piece is encoded. */
export function describePiece(handle: StateHandle__Output, piece: EncodedPiece): StateHandle__Output {
  return { ...handle, compression: compressionOf(piece.codec), rawSizeBytes: piece.rawSizeBytes };
}

/**
 * The raw bytes of a stored piece in `codec`, of exactly `rawSizeBytes`.
 * Throws MALFORMED (a bad handle) when `rawSizeBytes` is not an integer
 * from 0 to the limit, and INTERNAL `snapshot <uri> is corrupt: …` when
 * the stored bytes do not decompress, would inflate past `rawSizeBytes`
 * (decompression stops there), or come out shorter.
 */
export async function decompressPiece(
  codec: PieceCodec,
  stored: Uint8Array,
  rawSizeBytes: number,
  limits: DecompressLimits,
): Promise<Uint8Array> {
  const target = inflateTarget(rawSizeBytes, limits);
  const raw = await inflate(codec, stored, target);
  if (raw.length !== rawSizeBytes) {
    const problem = `it has ${raw.length} raw bytes, the handle says ${rawSizeBytes}`;
    throw corruptSnapshotError(limits.uri, problem, target.ids);
  }
  return raw;
}

/**
 * The raw bytes of a piece `handle` names, from `stored`, the bytes a
 * backend's `get` returned (and verified) for it. A handle written before
 * compression (UNSPECIFIED, raw size 0) reads as its stored bytes.
 */
export async function decodeStoredPiece(
  handle: StateHandle__Output,
  stored: Uint8Array,
  limits: Omit<DecompressLimits, 'uri'> = {},
): Promise<Uint8Array> {
  const uri = typeof handle.uri === 'string' ? handle.uri : '';
  const ids = limits.ids ?? {};
  const codec = pieceCodecOf(handle.compression, `state handle ${JSON.stringify(uri)} compression`, ids);
  const stated = Number(handle.rawSizeBytes);
  const rawSizeBytes = codec === 'none' && stated === 0 ? stored.length : stated;
  return decompressPiece(codec, stored, rawSizeBytes, { ...limits, uri });
}

function inflate(codec: PieceCodec, stored: Uint8Array, target: InflateTarget): Promise<Uint8Array> | Uint8Array {
  switch (codec) {
    case 'none':
      return stored;
    case 'lz4':
      return unlz4Piece(stored, target);
    case 'brotli':
      return unbrotliPiece(stored, target);
  }
}

/** Checks the limit and the raw size before anything is allocated. */
function inflateTarget(rawSizeBytes: number, limits: DecompressLimits): InflateTarget {
  const { uri } = limits;
  const ids = limits.ids ?? {};
  const max = limits.maxRawBytes ?? DEFAULT_MAX_RAW_PIECE_BYTES;
  if (!Number.isSafeInteger(max) || max < 0 || max > MAX_RAW_PIECE_BYTES_LIMIT) {
    throw new CkptError(
      'MALFORMED',
      `maxRawBytes ${String(max)} must be an integer from 0 to ${MAX_RAW_PIECE_BYTES_LIMIT}`,
    );
  }
  if (!Number.isSafeInteger(rawSizeBytes) || rawSizeBytes < 0) {
    throw malformedHandleError(uri, `has an invalid raw size ${String(rawSizeBytes)}`);
  }
  if (rawSizeBytes > max) {
    throw malformedHandleError(uri, `has a raw size of ${rawSizeBytes} bytes, more than the ${max} a piece may have`);
  }
  return { uri, rawSizeBytes, ids };
}
