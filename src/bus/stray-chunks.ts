/**
 * Stray chunks in a NATS object store bucket. The object store writes an
 * object's chunks on `$O.<bucket>.C.<nuid>` first and its metadata on
 * `$O.<bucket>.M.<name>` last, naming the nuid. A writer killed during a
 * put leaves chunks that no metadata names, and that nothing ever reads or
 * deletes; so does one killed after it replaced or deleted an object but
 * before it purged the old chunks (both write the metadata first). Such
 * chunks are purged here once the newest of their upload is older than the
 * grace period.
 *
 * A manifest can name no stray chunk: a handle is read through the
 * metadata. So the purge does not wait for the registry of retained
 * checkpoints, as deletions of objects do.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { StrayChunkLimits, StrayChunkPurge } from '../core/ports.js';
import { fromNatsError } from './nats-errors.js';

/** Purges the stray chunks of `bucket`; see the module comment and `StatePieces.purgeStrayChunks`. */
export async function purgeStrayChunks(
  jsm: JetStreamManager,
  store: ObjectStore,
  bucket: string,
  limits: StrayChunkLimits,
): Promise<StrayChunkPurge> {
  const prefix = `$O.${bucket}.C.`;
  // Listed before the chunk subjects: an object that completes in between
  // has young chunks. The listing leaves deleted objects out, whose chunks
  // are stray if their deletion was cut short.
  const live = await call(`list bucket ${bucket}`, async () => new Set((await store.list()).map((info) => info.nuid)));
  const { streamInfo } = await call(`read the chunk subjects of bucket ${bucket}`, () =>
    store.status({ subjects_filter: `${prefix}>` }),
  );
  const unnamed = Object.entries(streamInfo.state.subjects ?? {}).filter(
    ([subject]) => !live.has(subject.slice(prefix.length)),
  );
  const purge: StrayChunkPurge = { subjects: 0, chunks: 0, bytes: 0, inspected: 0, young: 0, deferred: 0, failed: [] };
  // The server lists subjects in no set order, so a later purge may reach those deferred now.
  const inspected = unnamed.slice(0, Math.max(0, limits.maxSubjects));
  purge.inspected = inspected.length;
  purge.deferred = unnamed.length - inspected.length;
  for (const [subject] of inspected) {
    try {
      await purgeIfStray(jsm, streamInfo.config.name, subject, limits, purge);
    } catch (err) {
      purge.failed.push({ subject, why: fromNatsError(err, `purge stray chunks ${subject}`).message });
    }
  }
  return purge;
}

/** Reads the newest chunk of `subject` and purges them all if it is old enough. */
async function purgeIfStray(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  limits: StrayChunkLimits,
  purge: StrayChunkPurge,
): Promise<void> {
  const newest = await jsm.streams.getMessage(stream, { last_by_subj: subject });
  // Gone since the listing: purged by a delete or a put that replaced its object.
  if (newest === null) return;
  // A put in progress keeps publishing chunks (one at most a chunk timeout
  // after the other, from bytes in memory), so its newest chunk is young
  // and it is left alone; its metadata will name it.
  if (limits.nowMs - newest.time.getTime() < limits.graceMs) {
    purge.young += 1;
    return;
  }
  const { purged } = await jsm.streams.purge(stream, { filter: subject });
  purge.subjects += 1;
  purge.chunks += purged;
  purge.bytes += purged * newest.data.length;
}

async function call<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromNatsError(err, action);
  }
}
