/**
 * A manifest as stored: its encoding, DEFLATE-compressed when larger than
 * `compressManifestAboveBytes`, either inline in the root, or split into
 * content-addressed parts that the root names in order, with the size and
 * SHA-256 of every part and of the whole encoding.
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { constants as zlibConstants, deflateRaw, inflateRawSync } from 'node:zlib';
import type { ManifestRoot, ManifestRoot__Output } from '../gen/ckpt/v1/ManifestRoot.js';
import { corruptManifest, type ManifestOrigin } from './checkpoint-checks.js';

/** One part of an encoded manifest. */
export interface ManifestChunk {
  /** Hex SHA-256 of `bytes`; also the part's key suffix. */
  sha256: string;
  bytes: Uint8Array;
}

/** A manifest laid out for storage. */
export interface StoredManifestLayout {
  root: ManifestRoot;
  /** Hex SHA-256 of the whole encoded manifest. */
  sha256: string;
  /** The parts to write before the root, in order; empty when inline. */
  chunks: ManifestChunk[];
}

/** DEFLATE in libuv's thread pool: a manifest of 100,000 tasks takes 100 ms to compress, off the event loop. */
const deflateRawAsync = promisify(deflateRaw);

/** Hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Lays out an encoded manifest: compressed when larger than
 * `compressManifestAboveBytes` (and smaller for it), then inline when at
 * most `inlineManifestBytes`, else in parts of at most `partBytes`, in
 * order.
 */
export async function layoutManifest(
  encoded: Uint8Array,
  ids: { checkpointId: number; epoch: number },
  sizes: { inlineManifestBytes: number; partBytes: number; compressManifestAboveBytes: number },
): Promise<StoredManifestLayout> {
  // The hash is taken on the event loop while the thread pool compresses.
  const compressing =
    encoded.length > sizes.compressManifestAboveBytes
      ? deflateRawAsync(encoded, { level: zlibConstants.Z_BEST_SPEED })
      : undefined;
  const sha256 = sha256Hex(encoded);
  const compressed = await compressing;
  const useCompressed = compressed !== undefined && compressed.length < encoded.length;
  const stored = useCompressed ? compressed : encoded;
  const whole = {
    checkpointId: ids.checkpointId,
    epoch: ids.epoch,
    manifestBytes: encoded.length,
    manifestSha256: sha256,
    compression: useCompressed
      ? ('MANIFEST_COMPRESSION_DEFLATE' as const)
      : ('MANIFEST_COMPRESSION_UNSPECIFIED' as const),
    storedBytes: stored.length,
  };
  if (stored.length <= sizes.inlineManifestBytes) {
    return { root: { ...whole, inline: Buffer.from(stored), parts: [] }, sha256, chunks: [] };
  }
  const chunks: ManifestChunk[] = [];
  for (let offset = 0; offset < stored.length; offset += sizes.partBytes) {
    const bytes = stored.subarray(offset, offset + sizes.partBytes);
    chunks.push({ sha256: sha256Hex(bytes), bytes });
  }
  const parts = chunks.map((chunk) => ({ sha256: chunk.sha256, sizeBytes: chunk.bytes.length }));
  return { root: { ...whole, parts }, sha256, chunks };
}

/**
 * The encoded manifest of a root that passed `checkRoot`, from its inline
 * bytes or from its parts (`parts` maps a hash to the bytes read, each
 * already of its recorded size), decompressed when stored so, and verified
 * against every recorded hash and size. Throws a `CorruptRecordError` on
 * any mismatch, or stored bytes that do not decompress to the recorded
 * size.
 */
export function assembleManifest(
  root: ManifestRoot__Output,
  parts: ReadonlyMap<string, Uint8Array>,
  origin: ManifestOrigin,
): Uint8Array {
  const pieces: Uint8Array[] = [];
  if (root.parts.length === 0) pieces.push(root.inline);
  for (const [index, part] of root.parts.entries()) {
    const bytes = parts.get(part.sha256);
    const partKey = origin.partKey(part.sha256);
    if (bytes === undefined) throw corruptManifest(origin, partKey, `part ${index} (${part.sha256}) is missing`);
    if (bytes.length !== part.sizeBytes || sha256Hex(bytes) !== part.sha256) {
      throw corruptManifest(origin, partKey, `part ${index} (${part.sha256}) does not match its recorded size or hash`);
    }
    pieces.push(bytes);
  }
  const stored = Buffer.concat(pieces);
  const encoded = decompress(root, stored, origin);
  if (encoded.length !== root.manifestBytes || sha256Hex(encoded) !== root.manifestSha256) {
    throw corruptManifest(origin, origin.rootKey, 'the assembled bytes do not match the recorded size or hash');
  }
  return encoded;
}

function decompress(root: ManifestRoot__Output, stored: Buffer, origin: ManifestOrigin): Buffer {
  if (root.compression !== 'MANIFEST_COMPRESSION_DEFLATE') return stored;
  try {
    // At most the recorded size, itself bounded by maxManifestBytes: a
    // corrupt stream cannot inflate without bound.
    return inflateRawSync(stored, { maxOutputLength: root.manifestBytes });
  } catch (err) {
    throw corruptManifest(origin, origin.rootKey, `the stored bytes do not decompress: ${(err as Error).message}`, err);
  }
}
