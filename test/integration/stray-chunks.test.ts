/**
 * The purge of stray chunks in a JetStream object store bucket, against a
 * real NATS server: chunks published the way a put publishes them, with no
 * metadata naming them (a put killed part-way), and the chunks of an
 * object whose deletion wrote its metadata but was cut short before its
 * purge, go once past the grace period; young ones stay, and every object
 * stored through the backend still reads back verified.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { headers, nuid, type NatsConnection } from '@nats-io/nats-core';
import { Base64UrlPaddedCodec, Objm, type ObjectStore } from '@nats-io/obj';
import { createObjectPieces } from '../../src/bus/index.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { createObjectStoreBackend, parseObjectUri, type ObjectStoreBackend } from '../../src/sdk/state/index.js';
import { natsConnection, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers({ etcd: false });

const CHUNK_BYTES = 1024;
const GRACE_MS = 500;

interface Bucket {
  nc: NatsConnection;
  js: JetStreamClient;
  bucket: string;
  store: ObjectStore;
  backend: ObjectStoreBackend;
}

/** A bucket of the test's own, created by the backend and destroyed when the test ends. */
async function openBucket(t: ExecutionContext): Promise<Bucket> {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = `state-${uniquePrefix(t).nats}`;
  const backend = await createObjectStoreBackend({ connection: nc, bucket, chunkBytes: CHUNK_BYTES });
  const store = await new Objm(nc).open(bucket);
  t.teardown(async () => {
    await backend.close();
    await store.destroy();
  });
  return { nc, js: jetstream(nc), bucket, store, backend };
}

/** Snapshots of checkpoint `checkpointId`, several chunks each, stored through the backend. */
async function putSnapshots(b: Bucket, checkpointId: number): Promise<Map<StateHandle__Output, Uint8Array>> {
  const stored = new Map<StateHandle__Output, Uint8Array>();
  for (const taskId of ['task-a', 'task-b']) {
    const bytes = randomBytes(3 * CHUNK_BYTES + 100);
    stored.set(await b.backend.put({ jobId: 'job-1', taskId, checkpointId, epoch: 1 }, bytes), bytes);
  }
  return stored;
}

/** What a put killed after `chunks` chunks leaves: chunks on a fresh nuid, no metadata. Returns the subject. */
async function killedPut(b: Bucket, chunks: number): Promise<string> {
  const subject = `$O.${b.bucket}.C.${nuid.next()}`;
  for (let i = 0; i < chunks; i++) await b.js.publish(subject, randomBytes(CHUNK_BYTES));
  return subject;
}

/** What a deletion cut short before its purge leaves: metadata saying deleted, the chunks still there. Returns their subject. */
async function cutShortDelete(b: Bucket, handle: StateHandle__Output): Promise<string> {
  const { name } = parseObjectUri(handle.uri);
  const info = await b.store.info(name);
  if (info === null) throw new Error(`${name} is not in the bucket`);
  const h = headers();
  h.set('Nats-Rollup', 'sub');
  const deleted = { name, bucket: b.bucket, nuid: info.nuid, size: 0, chunks: 0, digest: '', deleted: true };
  await b.js.publish(`$O.${b.bucket}.M.${Base64UrlPaddedCodec.encode(name)}`, JSON.stringify(deleted), { headers: h });
  return `$O.${b.bucket}.C.${info.nuid}`;
}

/** The chunk subjects of the bucket with their message counts. */
async function chunkSubjects(b: Bucket): Promise<Record<string, number>> {
  const status = await b.store.status({ subjects_filter: `$O.${b.bucket}.C.>` });
  return status.streamInfo.state.subjects ?? {};
}

test('chunks no live object names go once past the grace period; young ones and every object stay', async (t) => {
  const b = await openBucket(t);
  const kept = await putSnapshots(b, 1);
  const [first, ...others] = await putSnapshots(b, 2);
  if (first === undefined) throw new Error('nothing stored');
  for (const [handle, bytes] of others) kept.set(handle, bytes);
  const [doomed] = first;
  const old = [await killedPut(b, 3), await killedPut(b, 1), await cutShortDelete(b, doomed)];
  await delay(GRACE_MS + 100);
  const young = await killedPut(b, 2);
  for (const [handle, bytes] of await putSnapshots(b, 3)) kept.set(handle, bytes);
  const before = await chunkSubjects(b);

  const purge = await createObjectPieces(b.nc).purgeStrayChunks(b.bucket, {
    graceMs: GRACE_MS,
    nowMs: Date.now(),
    maxSubjects: 1000,
  });

  t.like(purge, { subjects: 3, chunks: 3 + 1 + 4, inspected: 4, young: 1, deferred: 0, failed: [] });
  // The deleted object's newest chunk is its short last one: its chunks are reckoned at that size.
  t.is(purge.bytes, (3 + 1) * CHUNK_BYTES + 4 * 100);
  const after = await chunkSubjects(b);
  for (const subject of old) t.is(after[subject], undefined, subject);
  t.is(after[young], 2);
  t.is(Object.keys(after).length, Object.keys(before).length - 3);
  for (const [handle, bytes] of kept) t.true(Buffer.from(await b.backend.get(handle)).equals(bytes), handle.uri);
});

test('the purge inspects no more subjects than it may, and a missing bucket rejects', async (t) => {
  const b = await openBucket(t);
  await putSnapshots(b, 1);
  const strays = [await killedPut(b, 1), await killedPut(b, 1)];
  await delay(GRACE_MS + 100);
  const pieces = createObjectPieces(b.nc);
  const limits = { graceMs: GRACE_MS, nowMs: Date.now(), maxSubjects: 1 };

  t.like(await pieces.purgeStrayChunks(b.bucket, limits), { subjects: 1, inspected: 1, deferred: 1 });
  t.like(await pieces.purgeStrayChunks(b.bucket, limits), { subjects: 1, inspected: 1, deferred: 0 });
  const after = await chunkSubjects(b);
  for (const subject of strays) t.is(after[subject], undefined, subject);
  await t.throwsAsync(pieces.purgeStrayChunks(`${b.bucket}-none`, limits));
});
