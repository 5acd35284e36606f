/**
 * Options of the NATS JetStream Object Store backend, and the one function
 * that turns them into a complete, validated configuration.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { silentLogger, type Logger } from '../../log/index.js';
import { booleanOption, invalidOption, positiveInteger } from './option-checks.js';

/** Default bucket holding the snapshots. */
export const DEFAULT_BUCKET = 'ckpt-state';
/** Default largest chunk of an object: 128 KiB, the object store's own default. */
export const DEFAULT_CHUNK_BYTES = 131_072;
/** Default deadline of storing one chunk. */
export const DEFAULT_CHUNK_TIMEOUT_MS = 5_000;
/** Default replicas of a bucket the backend creates. */
export const DEFAULT_REPLICAS = 1;

/** Where JetStream keeps a bucket the backend creates. */
export type ObjectStoreStorage = 'file' | 'memory';

/** Bucket names JetStream accepts (`[A-Za-z0-9_-]`), at most 128 characters here. */
export const BUCKET_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** How the object store backend reaches and uses its bucket. */
export interface ObjectStoreBackendOptions {
  /**
   * An open NATS connection to a server with JetStream, e.g. from
   * `connectNats`. The backend does not close it. Required.
   */
  connection: NatsConnection;
  /**
   * The bucket holding the snapshots; created when missing.
   * @default 'ckpt-state'
   */
  bucket?: string;
  /**
   * Storage of a bucket the backend creates; an existing bucket keeps its own.
   * @default 'file'
   */
  storage?: ObjectStoreStorage;
  /**
   * Replicas of a bucket the backend creates, at most the cluster's size.
   * @default 1
   */
  replicas?: number;
  /**
   * Largest chunk of an object; the server's `max_payload` caps it.
   * @default 131072 (128 KiB)
   */
  chunkBytes?: number;
  /**
   * Deadline of storing one chunk, and of receiving the next chunk of a
   * read, in milliseconds.
   * @default 5000
   */
  chunkTimeoutMs?: number;
  /**
   * Have the object store client compute its own digests with `node:crypto`
   * instead of its pure JavaScript default, which is several times slower
   * and holds the event loop for tens of milliseconds per large object.
   * The setting applies to the whole process (`setSha256Backend` of
   * `@nats-io/obj`); the digests are the same either way.
   * @default true
   */
  nativeSha256?: boolean;
  /**
   * Logger; the backend logs with `component: 'state', backend: 'nats-obj'`.
   * @default a silent logger
   */
  logger?: Logger;
}

/** `ObjectStoreBackendOptions` with defaults applied and validated. */
export interface ResolvedObjectStoreBackendOptions {
  connection: NatsConnection;
  bucket: string;
  storage: ObjectStoreStorage;
  replicas: number;
  chunkBytes: number;
  chunkTimeoutMs: number;
  nativeSha256: boolean;
  logger: Logger;
}

const BACKEND = 'nats-obj';

/**
 * Applies the defaults and validates every option; throws a MALFORMED
 * `CkptError` naming the first option that is wrong.
 */
export function resolveObjectStoreBackendOptions(
  options: ObjectStoreBackendOptions,
): ResolvedObjectStoreBackendOptions {
  const connection: unknown = options.connection;
  if (typeof connection !== 'object' || connection === null || !('publish' in connection)) {
    invalidOption(BACKEND, 'connection', 'must be an open NATS connection');
  }
  const bucket = options.bucket ?? DEFAULT_BUCKET;
  if (typeof bucket !== 'string' || !BUCKET_PATTERN.test(bucket)) {
    invalidOption(BACKEND, 'bucket', `must be 1-128 characters of [A-Za-z0-9_-], got ${JSON.stringify(bucket)}`);
  }
  const storage = options.storage ?? 'file';
  if (storage !== 'file' && storage !== 'memory') {
    invalidOption(BACKEND, 'storage', `must be 'file' or 'memory', got ${JSON.stringify(storage)}`);
  }
  return {
    connection: options.connection,
    bucket,
    storage,
    replicas: positiveInteger(BACKEND, 'replicas', options.replicas, DEFAULT_REPLICAS),
    chunkBytes: positiveInteger(BACKEND, 'chunkBytes', options.chunkBytes, DEFAULT_CHUNK_BYTES),
    chunkTimeoutMs: positiveInteger(BACKEND, 'chunkTimeoutMs', options.chunkTimeoutMs, DEFAULT_CHUNK_TIMEOUT_MS),
    nativeSha256: booleanOption(BACKEND, 'nativeSha256', options.nativeSha256, true),
    logger: options.logger ?? silentLogger(),
  };
}
