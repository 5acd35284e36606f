/**
 * Snapshots as objects in a NATS JetStream Object Store bucket, named
 * `<jobId>/<taskId>/<checkpointId>-<epoch>` and addressed by
 * `nats-obj://<bucket>/<name>` uris. Suits a cluster: every worker reaches
 * every snapshot through NATS. The handle carries our own sha256 of the
 * bytes, checked on `get` beside the object store's own digest. It reads
 * nothing but snapshot objects of its own bucket: a handle naming another
 * bucket or another kind of object is refused.
 */
import { createHash } from 'node:crypto';
import type { ObjectInfo, ObjectStore, Objm, StorageType } from '@nats-io/obj';
import { CkptError } from '../../core/errors.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import type { Logger } from '../../log/index.js';
import { formatChecksum } from './checksum.js';
import { callObjectStore, translateObjectStoreError } from './object-store-errors.js';
import {
  resolveObjectStoreBackendOptions,
  type ObjectStoreBackendOptions,
  type ResolvedObjectStoreBackendOptions,
} from './object-store-options.js';
import { NATS_OBJ_URI_SCHEME, objectName, objectUri, parseObjectUri } from './object-store-uri.js';
import { discardObjectPieces, listObjectPieces } from './object-store-pieces.js';
import { chunkStream, readVerifiedObject } from './object-streams.js';
import { OperationGate } from './operation-gate.js';
import { corruptSnapshotError, malformedHandleError, missingSnapshotError, throwIfAborted } from './snapshot-errors.js';
import { checkSnapshotKey } from './snapshot-key.js';
import { locateSnapshot, type SnapshotOwner } from './snapshot-location.js';
import type { DiscardOutcome, ListedPiece, SnapshotKey, StateBackend } from './state-backend.js';
import { checkHandle, checkUriLength, stateHandle, type CheckedHandle } from './state-handle.js';

/** A `StateBackend` keeping snapshots in a NATS JetStream Object Store bucket. */
export interface ObjectStoreBackend extends StateBackend {
  /** The bucket `put` writes to. */
  readonly bucket: string;
}

/**
 * Opens the bucket, creating it when missing, and returns a backend keeping
 * snapshots in it. Rejects with MALFORMED for bad options, UNAVAILABLE when
 * JetStream cannot be reached or refuses the bucket.
 */
export async function createObjectStoreBackend(options: ObjectStoreBackendOptions): Promise<ObjectStoreBackend> {
  const resolved = resolveObjectStoreBackendOptions(options);
  // Loaded here, not with the module: a worker keeping its snapshots elsewhere starts without it.
  const obj = await import('@nats-io/obj');
  if (resolved.nativeSha256) obj.setSha256Backend('native');
  const store = await createBucket(new obj.Objm(resolved.connection), resolved, obj.StorageType);
  return new NatsObjectBackend(resolved, store);
}

/** Creates or opens the bucket; another worker may create it at the same moment. */
async function createBucket(
  objm: Objm,
  options: ResolvedObjectStoreBackendOptions,
  storageTypes: typeof StorageType,
): Promise<ObjectStore> {
  const { bucket, replicas } = options;
  const storage = options.storage === 'memory' ? storageTypes.Memory : storageTypes.File;
  try {
    return await objm.create(bucket, { storage, replicas });
  } catch (err) {
    try {
      return await objm.open(bucket);
    } catch {
      throw translateObjectStoreError(err, { operation: `create bucket ${bucket}` });
    }
  }
}

class NatsObjectBackend implements ObjectStoreBackend {
  readonly bucket: string;
  readonly #options: ResolvedObjectStoreBackendOptions;
  readonly #logger: Logger;
  readonly #gate = new OperationGate('nats-obj');
  /** Our bucket, where `put` writes, `get` reads and `discard` deletes. */
  readonly #own: ObjectStore;

  constructor(options: ResolvedObjectStoreBackendOptions, store: ObjectStore) {
    this.bucket = options.bucket;
    this.#options = options;
    this.#logger = options.logger.child({ component: 'state', backend: 'nats-obj', bucket: options.bucket });
    this.#own = store;
  }

  put(key: SnapshotKey, bytes: Uint8Array, signal?: AbortSignal): Promise<StateHandle__Output> {
    return this.#gate.run(() => this.#put(key, bytes, signal));
  }

  get(handle: StateHandle__Output, signal?: AbortSignal, owner?: SnapshotOwner): Promise<Uint8Array> {
    return this.#gate.run(() => this.#get(handle, signal, owner));
  }

  discard(jobId: string, uris: readonly string[]): Promise<DiscardOutcome> {
    return this.#gate.run(() => discardObjectPieces(this.#own, this.bucket, jobId, uris));
  }

  listPieces(jobId: string): Promise<ListedPiece[]> {
    return this.#gate.run(() => listObjectPieces(this.#own, this.bucket, jobId));
  }

  close(): Promise<void> {
    return this.#gate.close();
  }

  async #put(key: SnapshotKey, bytes: Uint8Array, signal: AbortSignal | undefined): Promise<StateHandle__Output> {
    const ids = checkSnapshotKey(key);
    const name = objectName(key);
    const uri = objectUri(this.bucket, name);
    checkUriLength(uri, ids);
    throwIfAborted(signal, 'put', uri, ids);
    const { chunkBytes, chunkTimeoutMs } = this.#options;
    const hash = createHash('sha256');
    const data = chunkStream(bytes, chunkBytes, (chunk) => {
      throwIfAborted(signal, 'put', uri, ids);
      hash.update(chunk);
    });
    const info = await callObjectStore({ ...ids, operation: `put ${uri}` }, () =>
      this.#own.put({ name, options: { max_chunk_size: chunkBytes } }, data, { timeout: chunkTimeoutMs }),
    );
    if (info.size !== bytes.length) {
      throw new CkptError('INTERNAL', `put ${uri} stored ${info.size} of ${bytes.length} bytes`, ids);
    }
    this.#logger.debug({ ...ids, uri, sizeBytes: bytes.length }, 'snapshot stored');
    return stateHandle(uri, bytes.length, formatChecksum(hash));
  }

  async #get(
    handle: StateHandle__Output,
    signal: AbortSignal | undefined,
    owner: SnapshotOwner | undefined,
  ): Promise<Uint8Array> {
    const expected = checkHandle(handle, NATS_OBJ_URI_SCHEME);
    const name = this.#locate(expected.uri, owner);
    const checkpoint = (): void => throwIfAborted(signal, 'get', expected.uri);
    const store = this.#own;
    const context = { operation: `get ${expected.uri}` };
    const info = await callObjectStore(context, () => store.info(name));
    checkpoint();
    checkObjectInfo(info, expected);
    const result = await callObjectStore(context, () => store.get(name));
    if (result === null) throw missingSnapshotError(expected.uri);
    const { chunkTimeoutMs } = this.#options;
    return callObjectStore(context, () => readVerifiedObject(result, expected, checkpoint, chunkTimeoutMs, signal));
  }

  /** The object name of a uri this backend wrote: a snapshot object of its own bucket. */
  #locate(uri: string, owner: SnapshotOwner | undefined): string {
    const { bucket, name } = parseObjectUri(uri);
    if (bucket !== this.bucket) throw malformedHandleError(uri, `names bucket ${bucket}, not ${this.bucket}`);
    locateSnapshot(uri, name.split('/'), '', `bucket ${this.bucket}`, owner);
    return name;
  }
}

/** Throws when the object is gone or its size differs from the handle's. */
function checkObjectInfo(info: ObjectInfo | null, expected: CheckedHandle): void {
  if (info === null || info.deleted) throw missingSnapshotError(expected.uri);
  if (info.size !== expected.sizeBytes) {
    throw corruptSnapshotError(expected.uri, `it has ${info.size} bytes, the handle says ${expected.sizeBytes}`);
  }
}
