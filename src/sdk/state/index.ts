/**
 * State backends of the worker SDK: where task snapshots are stored and
 * fetched back, verified, on recovery (a local directory or a NATS
 * JetStream Object Store bucket), the compression of snapshot pieces, and
 * a keyed state with a deterministic encoding for tasks that do not write
 * their own snapshots.
 */
export type { DiscardOutcome, ListedPiece, SnapshotKey, StateBackend } from './state-backend.js';
export { discardObjectPieces, listObjectPieces, openObjectBucket, type ObjectPiece } from './object-store-pieces.js';
export { locateSnapshot, parseSnapshotSegments } from './snapshot-location.js';
export type { SnapshotLocation, SnapshotOwner } from './snapshot-location.js';
export { createStateBackend } from './create-state-backend.js';
export type {
  DirectoryStateBackendConfig,
  ObjectStoreStateBackendConfig,
  StateBackendConfig,
} from './create-state-backend.js';
export {
  createLocalDirectoryBackend,
  FILE_URI_SCHEME,
  SNAPSHOT_FILE_EXTENSION,
  type LocalDirectoryBackend,
} from './local-directory-backend.js';
export {
  DEFAULT_DIRECTORY_SLICE_BYTES,
  resolveLocalDirectoryBackendOptions,
  type LocalDirectoryBackendOptions,
  type ResolvedLocalDirectoryBackendOptions,
} from './local-directory-options.js';
export { createObjectStoreBackend, type ObjectStoreBackend } from './object-store-backend.js';
export {
  BUCKET_PATTERN,
  DEFAULT_BUCKET,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_CHUNK_TIMEOUT_MS,
  DEFAULT_REPLICAS,
  resolveObjectStoreBackendOptions,
  type ObjectStoreBackendOptions,
  type ObjectStoreStorage,
  type ResolvedObjectStoreBackendOptions,
} from './object-store-options.js';
export { NATS_OBJ_URI_SCHEME, objectUri, parseObjectUri, type ObjectLocation } from './object-store-uri.js';
export { CHECKSUM_PREFIX, parseChecksum, sha256Checksum } from './checksum.js';
export { verifyChecksum } from './verify-checksum.js';
export { KeyedState, type JsonValue } from './keyed-state.js';
export { decodeKeyedState, encodeKeyedState, KEYED_STATE_VERSION } from './keyed-state-codec.js';
export { canonicalJson } from './canonical-json.js';
export {
  compressionOf,
  compressPiece,
  decodeStoredPiece,
  decompressPiece,
  DEFAULT_MAX_RAW_PIECE_BYTES,
  describePiece,
  encodePiece,
  PIECE_CODECS,
  pieceCodecOf,
  type DecompressLimits,
  type EncodedPiece,
  type PieceCodec,
} from './compression.js';
