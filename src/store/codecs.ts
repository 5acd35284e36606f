/**
 * Protobuf codecs of the stored messages, and decoding that reports
 * unreadable bytes as a corrupt record.
 */
import { CkptError, type ErrorIds } from '../core/errors.js';
import type { CorruptRecordError } from './corrupt-record.js';
import type { CheckpointSummary, CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest, Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { ManifestRoot, ManifestRoot__Output } from '../gen/ckpt/v1/ManifestRoot.js';
import type { RestorePoint, RestorePoint__Output } from '../gen/ckpt/v1/RestorePoint.js';
import type { Savepoint, Savepoint__Output } from '../gen/ckpt/v1/Savepoint.js';
import type { StoredJob, StoredJob__Output } from '../gen/ckpt/v1/StoredJob.js';
import { codec, type Codec } from '../proto/index.js';

/** The codecs of everything the store writes. */
export interface StoreCodecs {
  storedJob: Codec<StoredJob, StoredJob__Output>;
  manifest: Codec<Manifest, Manifest__Output>;
  manifestRoot: Codec<ManifestRoot, ManifestRoot__Output>;
  summary: Codec<CheckpointSummary, CheckpointSummary__Output>;
  restorePoint: Codec<RestorePoint, RestorePoint__Output>;
  savepoint: Codec<Savepoint, Savepoint__Output>;
}

let codecs: StoreCodecs | undefined;

/** The codecs, loaded from `proto/` at first use. */
export function storeCodecs(): StoreCodecs {
  codecs ??= {
    storedJob: codec<StoredJob, StoredJob__Output>('StoredJob'),
    manifest: codec<Manifest, Manifest__Output>('Manifest'),
    manifestRoot: codec<ManifestRoot, ManifestRoot__Output>('ManifestRoot'),
    summary: codec<CheckpointSummary, CheckpointSummary__Output>('CheckpointSummary'),
    restorePoint: codec<RestorePoint, RestorePoint__Output>('RestorePoint'),
    savepoint: codec<Savepoint, Savepoint__Output>('Savepoint'),
  };
  return codecs;
}

/**
 * Decodes a stored value; when the bytes are not a valid encoding, throws
 * what `corrupt` makes of the decoder's complaint.
 */
export function decodeStored<In, Out>(
  codecOf: Codec<In, Out>,
  bytes: Uint8Array,
  corrupt: (problem: string, cause: unknown) => CorruptRecordError,
): Out {
  try {
    return codecOf.decode(bytes);
  } catch (err) {
    throw corrupt(`does not decode: ${(err as Error).message}`, err);
  }
}

/** Encodes a message to store; throws MALFORMED when it is not a valid message. */
export function encodeForStore<In>(
  codecOf: Pick<Codec<In, unknown>, 'encode'>,
  message: In,
  what: string,
  ids: ErrorIds = {},
): Uint8Array {
  try {
    return codecOf.encode(message);
  } catch (err) {
    throw new CkptError('MALFORMED', `${what} cannot be encoded: ${(err as Error).message}`, { ...ids, cause: err });
  }
}
