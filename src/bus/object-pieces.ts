/**
 * `StatePieces` on NATS JetStream object stores: the coordinator lists and
 * deletes the snapshot pieces of its jobs in the buckets their handles
 * name, through the same functions the workers' object store backend uses,
 * and purges the chunks killed uploads left there (`stray-chunks.ts`).
 * A bucket is opened, never created, on first use; `@nats-io/obj` is
 * loaded then too, so that what imports the bus (workers too) does not
 * load it at start.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore, Objm } from '@nats-io/obj';
import type { PieceDiscard, StatePieces, StoredPieceInfo, StrayChunkLimits, StrayChunkPurge } from '../core/ports.js';
import { discardObjectPieces, listObjectPieces, openObjectBucket } from '../sdk/state/index.js';
import { fromNatsError } from './nats-errors.js';
import { purgeStrayChunks } from './stray-chunks.js';

/** Reaches the buckets over `connection`, which stays its owner's to close. */
export function createObjectPieces(connection: NatsConnection): StatePieces {
  let objm: Promise<Objm> | undefined;
  const opened = new Map<string, Promise<ObjectStore>>();
  const bucketOf = (bucket: string): Promise<ObjectStore> => {
    let store = opened.get(bucket);
    if (store === undefined) {
      objm ??= import('@nats-io/obj').then((obj) => new obj.Objm(connection));
      store = objm.then((m) => openObjectBucket(m, bucket));
      opened.set(bucket, store);
      // A bucket that could not be opened is tried again next time.
      void store.catch(() => opened.delete(bucket));
    }
    return store;
  };
  let manager: Promise<JetStreamManager> | undefined;
  const managerOf = (): Promise<JetStreamManager> => {
    // One that could not be made is tried again next time.
    manager ??= jetstreamManager(connection).catch((err: unknown) => {
      manager = undefined;
      throw fromNatsError(err, 'reach the JetStream API');
    });
    return manager;
  };
  return {
    async list(bucket: string, jobId: string): Promise<StoredPieceInfo[]> {
      return listObjectPieces(await bucketOf(bucket), bucket, jobId);
    },
    async discard(bucket: string, jobId: string, uris: readonly string[]): Promise<PieceDiscard> {
      return discardObjectPieces(await bucketOf(bucket), bucket, jobId, uris);
    },
    async purgeStrayChunks(bucket: string, limits: StrayChunkLimits): Promise<StrayChunkPurge> {
      return purgeStrayChunks(await managerOf(), await bucketOf(bucket), bucket, limits);
    },
  };
}
