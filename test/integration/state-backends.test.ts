import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { CkptError } from '../../src/core/errors.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import {
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  createStateBackend,
  parseObjectUri,
  resolveLocalDirectoryBackendOptions,
  resolveObjectStoreBackendOptions,
  verifyChecksum,
  type SnapshotKey,
  type StateBackend,
} from '../../src/sdk/state/index.js';
import { natsConnection, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers({ etcd: false });

const MIB = 1_048_576;

/** A backend under test, and what a test needs to damage its snapshots behind its back. */
interface Fixture {
  kind: 'dir' | 'nats-obj';
  backend: StateBackend;
  /** Replaces the stored bytes of `handle` with `bytes`. */
  overwrite: (handle: StateHandle__Output, bytes: Uint8Array) => Promise<void>;
  /** Deletes the snapshot of `handle` from the store. */
  remove: (handle: StateHandle__Output) => Promise<void>;
}

type FixtureFactory = (t: ExecutionContext) => Promise<Fixture>;

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-state-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function dirFixture(t: ExecutionContext): Promise<Fixture> {
  const backend = await createLocalDirectoryBackend({ dir: await tempDir(t) });
  t.teardown(() => backend.close());
  return {
    kind: 'dir',
    backend,
    overwrite: (handle, bytes) => writeFile(fileURLToPath(handle.uri), bytes),
    remove: (handle) => unlink(fileURLToPath(handle.uri)),
  };
}

/** A bucket of the test's own, destroyed when the test ends. */
function testBucket(t: ExecutionContext, nc: NatsConnection): string {
  const bucket = `state-${uniquePrefix(t).nats}`;
  t.teardown(async () => {
    const store = await new Objm(nc).open(bucket).catch(() => undefined);
    await store?.destroy();
  });
  return bucket;
}

async function objectStoreFixture(t: ExecutionContext): Promise<Fixture> {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = testBucket(t, nc);
  const backend = await createObjectStoreBackend({ connection: nc, bucket });
  t.teardown(() => backend.close());
  const store = await new Objm(nc).open(bucket);
  return {
    kind: 'nats-obj',
    backend,
    overwrite: async (handle, bytes) => {
      await store.putBlob({ name: parseObjectUri(handle.uri).name }, bytes);
    },
    remove: async (handle) => {
      await store.delete(parseObjectUri(handle.uri).name);
    },
  };
}

const fixtures: [string, FixtureFactory][] = [
  ['local directory', dirFixture],
  ['object store', objectStoreFixture],
];

function key(checkpointId: number, taskId = 'task-a', epoch = 1): SnapshotKey {
  return { jobId: 'job-1', taskId, checkpointId, epoch };
}

function b(text: string): Uint8Array {
  return Buffer.from(text);
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** The CkptError `promise` rejects with; fails the test if it resolves. */
async function rejection(t: ExecutionContext, promise: Promise<unknown>): Promise<CkptError> {
  const err = await t.throwsAsync(promise, { instanceOf: CkptError });
  if (err === undefined) throw new Error('no CkptError');
  return err;
}

for (const [name, fixture] of fixtures) {
  test(`${name}: a snapshot round-trips, and its handle has its size and sha256`, async (t) => {
    const { backend, kind } = await fixture(t);
    const bytes = randomBytes(300_000);
    const handle = await backend.put(key(7, 'task-a', 2), bytes);
    t.is(handle.sizeBytes, bytes.length);
    t.is(handle.checksum, sha256(bytes));
    t.deepEqual(handle.shared, []);
    if (kind === 'dir') t.regex(handle.uri, /^file:\/\/\/.+\/job-1\/task-a\/7-2\.snap$/);
    else t.regex(handle.uri, /^nats-obj:\/\/state-[^/]+\/job-1\/task-a\/7-2$/);
    t.true(sameBytes(await backend.get(handle), bytes));
    await verifyChecksum(bytes, handle);
  });

  test(`${name}: an empty snapshot round-trips`, async (t) => {
    const { backend } = await fixture(t);
    const handle = await backend.put(key(1), new Uint8Array(0));
    t.is(handle.sizeBytes, 0);
    t.is(handle.checksum, sha256(new Uint8Array(0)));
    t.is((await backend.get(handle)).length, 0);
  });

  test(`${name}: storing a key again replaces its snapshot`, async (t) => {
    const { backend } = await fixture(t);
    const first = await backend.put(key(3), Buffer.from('first'));
    const second = await backend.put(key(3), Buffer.from('second!'));
    t.is(second.uri, first.uri);
    t.is(Buffer.from(await backend.get(second)).toString(), 'second!');
    const stale = await rejection(t, backend.get(first));
    t.is(stale.reason, 'INTERNAL');
  });

  test(`${name}: a corrupted snapshot is detected, naming its uri`, async (t) => {
    const { backend, overwrite } = await fixture(t);
    const bytes = randomBytes(200_000);
    const handle = await backend.put(key(4), bytes);
    const flipped = Buffer.from(bytes);
    flipped[123_456] = (flipped[123_456] ?? 0) ^ 0x01;
    await overwrite(handle, flipped);
    const err = await rejection(t, backend.get(handle));
    t.is(err.reason, 'INTERNAL');
    t.false(err.retryable);
    t.true(err.message.includes(`snapshot ${handle.uri} is corrupt: its checksum is sha256:`), err.message);

    await overwrite(handle, bytes.subarray(0, 1000));
    const truncated = await rejection(t, backend.get(handle));
    t.true(truncated.message.includes(`snapshot ${handle.uri} is corrupt: it has 1000 bytes`), truncated.message);
  });

  test(`${name}: a missing snapshot is detected, naming its uri`, async (t) => {
    const { backend, remove } = await fixture(t);
    const handle = await backend.put(key(5), Buffer.from('state'));
    await remove(handle);
    const err = await rejection(t, backend.get(handle));
    t.is(err.reason, 'INTERNAL');
    t.is(err.message, `INTERNAL: snapshot ${handle.uri} is missing`);
    const never = await rejection(t, backend.get({ ...handle, uri: handle.uri.replace('5-1', '99-1') }));
    t.regex(never.message, /snapshot .*99-1.* is missing/);
  });

  test(`${name}: discard deletes the named snapshots of the job and leaves every other uri alone`, async (t) => {
    const { backend, kind } = await fixture(t);
    const [h1, h2, h3] = [
      await backend.put(key(1), b('1')),
      await backend.put(key(2), b('2')),
      await backend.put(key(3), b('3')),
    ];
    const otherJob = await backend.put({ ...key(1), jobId: 'job-2' }, b('other job'));
    const foreign = kind === 'dir' ? 'nats-obj://b/job-1/t/1-1' : 'file:///tmp/job-1/t/1-1.snap';
    const missing = h3.uri.replace('3-1', '99-1');
    const outcome = await backend.discard('job-1', [h1.uri, h2.uri, otherJob.uri, foreign, 'not a uri', missing]);
    t.is(outcome.deleted, 3, 'two snapshots, and a missing one counts as deleted');
    t.deepEqual(
      outcome.left.map((l) => l.uri),
      [otherJob.uri, foreign, 'not a uri'],
    );
    for (const gone of [h1, h2]) t.regex((await rejection(t, backend.get(gone))).message, /is missing/);
    for (const kept of [h3, otherJob]) t.truthy(await backend.get(kept));
    t.is((await rejection(t, backend.discard('../escape', [h3.uri]))).reason, 'MALFORMED');
  });

  test(`${name}: listPieces names the job's snapshots with their write times`, async (t) => {
    const { backend } = await fixture(t);
    const before = Date.now() - 2000;
    const handles = [await backend.put(key(1), b('a')), await backend.put(key(2, 'task-b'), b('b'))];
    await backend.put({ ...key(1), jobId: 'job-2' }, b('other job'));
    const pieces = await backend.listPieces('job-1');
    t.deepEqual(pieces.map((p) => p.uri).sort(), handles.map((h) => h.uri).sort());
    for (const p of pieces)
      t.true(p.modifiedAtMs >= before && p.modifiedAtMs <= Date.now() + 2000, String(p.modifiedAtMs));
    t.deepEqual(await backend.listPieces('job-never-written'), []);
  });

  test(`${name}: a 20 MiB snapshot round-trips`, async (t) => {
    const { backend } = await fixture(t);
    const bytes = randomBytes(20 * MIB);
    const handle = await backend.put(key(6), bytes);
    t.is(handle.sizeBytes, 20 * MIB);
    t.is(handle.checksum, sha256(bytes));
    const back = await backend.get(handle);
    t.is(back.length, bytes.length);
    t.true(sameBytes(back, bytes));
  });

  test(`${name}: an aborted put fails and leaves no snapshot`, async (t) => {
    const { backend } = await fixture(t);
    const controller = new AbortController();
    controller.abort();
    const err = await rejection(t, backend.put(key(8), randomBytes(3 * MIB), controller.signal));
    t.is(err.reason, 'CHECKPOINT_ABORTED');
    const during = new AbortController();
    const putting = backend.put(key(9), randomBytes(8 * MIB), during.signal);
    setImmediate(() => during.abort(new CkptError('SHUTTING_DOWN', 'worker stops')));
    t.is((await rejection(t, putting)).reason, 'SHUTTING_DOWN');
    t.deepEqual(await backend.listPieces('job-1'), []);
  });

  test(`${name}: an aborted get fails`, async (t) => {
    const { backend } = await fixture(t);
    const handle = await backend.put(key(10), randomBytes(2 * MIB));
    const err = await rejection(t, backend.get(handle, AbortSignal.abort()));
    t.is(err.reason, 'SHUTTING_DOWN');
  });

  test(`${name}: bad keys and foreign handles are refused as MALFORMED`, async (t) => {
    const { backend, kind } = await fixture(t);
    const bytes = Buffer.from('x');
    for (const bad of [
      { ...key(1), jobId: '../escape' },
      { ...key(1), taskId: 'a/b' },
      { ...key(1), checkpointId: -1 },
      { ...key(1), epoch: 1.5 },
    ]) {
      t.is((await rejection(t, backend.put(bad, bytes))).reason, 'MALFORMED');
    }
    const handle = await backend.put(key(1), bytes);
    const foreign = kind === 'dir' ? 'nats-obj://b/job-1/t/1-1' : 'file:///tmp/1-1.snap';
    for (const bad of [
      { ...handle, uri: foreign },
      { ...handle, uri: '' },
      { ...handle, checksum: 'md5:abc' },
      { ...handle, sizeBytes: -1 },
    ]) {
      t.is((await rejection(t, backend.get(bad))).reason, 'MALFORMED');
    }
    t.is((await rejection(t, backend.listPieces('a/b'))).reason, 'MALFORMED');
  });

  test(`${name}: a closed backend refuses calls, after the running ones finished`, async (t) => {
    const { backend } = await fixture(t);
    const putting = backend.put(key(11), randomBytes(4 * MIB));
    await backend.close();
    const handle = await putting;
    t.is(handle.sizeBytes, 4 * MIB);
    t.is((await rejection(t, backend.get(handle))).reason, 'SHUTTING_DOWN');
    t.is((await rejection(t, backend.put(key(12), Buffer.from('late')))).reason, 'SHUTTING_DOWN');
  });
}

test('local directory: files are named <dir>/<job>/<task>/<checkpoint>-<epoch>.snap with no temporary left', async (t) => {
  const dir = await tempDir(t);
  const backend = await createLocalDirectoryBackend({ dir: join(dir, 'nested', 'state') });
  t.teardown(() => backend.close());
  const bytes = Buffer.from('hello');
  const handle = await backend.put(key(3, 'task-a', 4), bytes);
  const path = join(dir, 'nested', 'state', 'job-1', 'task-a', '3-4.snap');
  t.is(handle.uri, `file://${path}`);
  t.deepEqual(await readFile(path), bytes);
  t.deepEqual(await readdir(join(dir, 'nested', 'state', 'job-1', 'task-a')), ['3-4.snap']);
});

test('local directory: listPieces names snapshot files only, and discard refuses a link leading out', async (t) => {
  const dir = await tempDir(t);
  const outside = await tempDir(t);
  const backend = await createLocalDirectoryBackend({ dir });
  t.teardown(() => backend.close());
  const kept = await backend.put(key(5), Buffer.from('kept'));
  const taskDir = join(dir, 'job-1', 'task-a');
  await writeFile(join(taskDir, '6-1.snap.0123456789ab.tmp'), 'upload in progress');
  await writeFile(join(taskDir, 'notes.txt'), 'not ours');
  await writeFile(join(outside, 'precious'), 'outside');
  await symlink(join(outside, 'precious'), join(taskDir, '7-1.snap'));
  t.deepEqual(
    (await backend.listPieces('job-1')).map((p) => p.uri),
    [kept.uri],
  );
  const link = pathToFileURL(join(taskDir, '7-1.snap')).href;
  const outcome = await backend.discard('job-1', [link]);
  t.is(outcome.deleted, 0);
  t.regex(outcome.left[0]?.why ?? '', /leads out of/);
  t.is(await readFile(join(outside, 'precious'), 'utf8'), 'outside');
});

test('local directory: temporary files of uploads not written to for a while are deleted, nothing else', async (t) => {
  const dir = await tempDir(t);
  const backend = await createLocalDirectoryBackend({ dir });
  t.teardown(() => backend.close());
  const kept = await backend.put(key(5), Buffer.from('kept'));
  const taskDir = join(dir, 'job-1', 'task-a');
  const stale = join(taskDir, '6-1.snap.0123456789ab.tmp');
  const fresh = join(taskDir, '7-1.snap.ba9876543210.tmp');
  const other = join(taskDir, 'notes.tmp');
  for (const path of [stale, fresh, other]) await writeFile(path, 'partial upload');
  const longAgo = new Date(Date.now() - 60_000);
  await utimes(stale, longAgo, longAgo);
  await utimes(other, longAgo, longAgo);
  t.deepEqual(await backend.discardStaleUploads('job-1', 30_000), { deleted: 1, bytes: 14 });
  const left = (await readdir(taskDir)).sort();
  t.deepEqual(left, ['5-1.snap', '7-1.snap.ba9876543210.tmp', 'notes.tmp']);
  t.is((await backend.get(kept)).length, 4);
  t.deepEqual(await backend.discardStaleUploads('job-2', 30_000), { deleted: 0, bytes: 0 });
});

test('local directory: a directory in place of a snapshot is reported as corrupt', async (t) => {
  const dir = await tempDir(t);
  const backend = await createLocalDirectoryBackend({ dir });
  t.teardown(() => backend.close());
  const handle = await backend.put(key(1), Buffer.from('x'));
  const path = fileURLToPath(handle.uri);
  await unlink(path);
  await mkdir(path);
  const err = await rejection(t, backend.get(handle));
  t.is(err.reason, 'INTERNAL');
  t.is(err.message, `INTERNAL: snapshot ${handle.uri} is corrupt: it is not a regular file`);
});

test('object store: the bucket is created with file storage when missing, and reused', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = testBucket(t, nc);
  const first = await createObjectStoreBackend({ connection: nc, bucket });
  const handle = await first.put(key(1), Buffer.from('shared'));
  await first.close();
  const status = await (await new Objm(nc).open(bucket)).status();
  t.is(status.storage, 'file');
  const second = await createObjectStoreBackend({ connection: nc, bucket });
  t.teardown(() => second.close());
  t.is(Buffer.from(await second.get(handle)).toString(), 'shared');
});

test('object store: a handle naming another bucket is refused without reading it', async (t) => {
  const { backend } = await objectStoreFixture(t);
  const handle = await backend.put(key(1), Buffer.from('x'));
  const elsewhere = { ...handle, uri: handle.uri.replace('nats-obj://state-', 'nats-obj://nowhere-') };
  const err = await rejection(t, backend.get(elsewhere));
  t.is(err.reason, 'MALFORMED');
  t.regex(err.message, /state handle "nats-obj:\/\/nowhere-.*" names bucket nowhere-.*, not state-/);
});

test('object store: a closed connection is UNAVAILABLE and not retryable', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = testBucket(t, await natsConnection(t, servers.natsUrl));
  const backend = await createObjectStoreBackend({ connection: nc, bucket });
  t.teardown(() => backend.close());
  await nc.close();
  const err = await rejection(t, backend.put(key(1), Buffer.from('x')));
  t.is(err.reason, 'UNAVAILABLE');
  t.false(err.retryable);
  t.regex(err.message, /put nats-obj:\/\/.*\/job-1\/task-a\/1-1 failed/);
});

test('object store: a read whose chunks never come fails UNAVAILABLE within chunkTimeoutMs, and close() ends', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = testBucket(t, nc);
  const backend = await createObjectStoreBackend({ connection: nc, bucket, chunkTimeoutMs: 500 });
  const handle = await backend.put(key(1), randomBytes(300_000));
  // The object's description stays while its chunks are gone: the client waits for them forever.
  const name = parseObjectUri(handle.uri).name;
  const info = await (await new Objm(nc).open(bucket)).info(name);
  if (info === null) throw new Error(`${name} is not in bucket ${bucket}`);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.purge(`OBJ_${bucket}`, { filter: `$O.${bucket}.C.${info.nuid}` });
  const started = Date.now();
  const err = await rejection(t, backend.get(handle));
  t.is(err.reason, 'UNAVAILABLE');
  t.true(err.retryable);
  t.regex(err.message, /read of nats-obj:\/\/.*\/job-1\/task-a\/1-1 stalled: no chunk after byte 0 within 500 ms/);
  t.true(Date.now() - started < 10_000, `the read ended after ${Date.now() - started} ms`);
  await backend.close();
});

test('createStateBackend chooses the backend by kind', async (t) => {
  const dir = await createStateBackend({ kind: 'dir', dir: await tempDir(t) });
  t.teardown(() => dir.close());
  t.regex((await dir.put(key(1), Buffer.from('d'))).uri, /^file:\/\//);
  const nc = await natsConnection(t, servers.natsUrl);
  const obj = await createStateBackend({ kind: 'nats-obj', connection: nc, bucket: testBucket(t, nc) });
  t.teardown(() => obj.close());
  t.regex((await obj.put(key(1), Buffer.from('o'))).uri, /^nats-obj:\/\//);
  const unknown = { kind: 's3' } as unknown as Parameters<typeof createStateBackend>[0];
  t.regex((await rejection(t, createStateBackend(unknown))).message, /kind must be 'dir' or 'nats-obj', got "s3"/);
});

test('options are validated with errors naming the option', (t) => {
  const message = (fn: () => unknown): string => t.throws(fn, { instanceOf: CkptError })?.message ?? '';
  t.regex(
    message(() => resolveLocalDirectoryBackendOptions({ dir: '' })),
    /option dir must be a non-empty path/,
  );
  t.regex(
    message(() => resolveLocalDirectoryBackendOptions({ dir: '/x', sliceBytes: 0 })),
    /option sliceBytes/,
  );
  const resolved = resolveLocalDirectoryBackendOptions({ dir: 'relative' });
  t.is(resolved.dir, join(process.cwd(), 'relative'));
  t.true(resolved.fsync);
  t.is(resolved.sliceBytes, MIB);
  const connection = {} as NatsConnection;
  t.regex(
    message(() => resolveObjectStoreBackendOptions({ connection })),
    /option connection/,
  );
  const nc = { publish: () => undefined } as unknown as NatsConnection;
  t.regex(
    message(() => resolveObjectStoreBackendOptions({ connection: nc, bucket: 'a.b' })),
    /option bucket/,
  );
  const storage = 'disk' as 'file';
  t.regex(
    message(() => resolveObjectStoreBackendOptions({ connection: nc, storage })),
    /option storage/,
  );
  t.regex(
    message(() => resolveObjectStoreBackendOptions({ connection: nc, chunkBytes: 1.5 })),
    /option chunkBytes/,
  );
  const defaults = resolveObjectStoreBackendOptions({ connection: nc });
  t.like(defaults, {
    bucket: 'ckpt-state',
    storage: 'file',
    replicas: 1,
    chunkBytes: 131_072,
    chunkTimeoutMs: 5000,
    nativeSha256: true,
  });
});

test('verifyChecksum accepts matching bytes and names the uri of others', async (t) => {
  const bytes = randomBytes(3 * MIB + 17);
  const handle: StateHandle__Output = {
    uri: 'file:///x/1-1.snap',
    sizeBytes: bytes.length,
    checksum: sha256(bytes),
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
    inFlightRecords: false,
  };
  await verifyChecksum(bytes, handle);
  await verifyChecksum(bytes, { ...handle, checksum: handle.checksum.toUpperCase().replace('SHA256', 'sha256') });
  const other = Buffer.from(bytes);
  other[0] = (other[0] ?? 0) ^ 0xff;
  t.regex((await rejection(t, verifyChecksum(other, handle))).message, /snapshot file:\/\/\/x\/1-1.snap is corrupt/);
  t.regex((await rejection(t, verifyChecksum(bytes.subarray(1), handle))).message, /has 3145744 bytes/);
  t.is((await rejection(t, verifyChecksum(bytes, { ...handle, checksum: 'crc32:1' }))).reason, 'MALFORMED');
});
