/**
 * `StatePieces` on NATS JetStream object stores: the coordinator lists and
 * deletes the snapshot pieces of its jobs in the buckets their handles
 * name, through the same functions the workers' object store backend uses.
 * A bucket is opened, never created, on first use.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { PieceDiscard, StatePieces, StoredPieceInfo } from '../core/ports.js';
import { discardObjectPieces, listObjectPieces, openObjectBucket } from '../sdk/state/index.js';

/** Reaches the buckets over `connection`, which stays its owner's to close. */
export function createObjectPieces(connection: NatsConnection): StatePieces {
  const objm = new Objm(connection);
  const opened = new Map<string, Promise<ObjectStore>>();
  const bucketOf = (bucket: string): Promise<ObjectStore> => {
    let store = opened.get(bucket);
    if (store === undefined) {
      store = openObjectBucket(objm, bucket);
      opened.set(bucket, store);
      // A bucket that could not be opened is tried again next time.
      void store.catch(() => opened.delete(bucket));
    }
    return store;
  };
  return {
    async list(bucket: string, jobId: string): Promise<StoredPieceInfo[]> {
      return listObjectPieces(await bucketOf(bucket), bucket, jobId);
    },
    async discard(bucket: string, jobId: string, uris: readonly string[]): Promise<PieceDiscard> {
      return discardObjectPieces(await bucketOf(bucket), bucket, jobId, uris);
    },
  };
}
