/**
 * The etcd store against a real etcd: job records, commits inline and in
 * parts, guards that refuse without changing anything, retention, garbage
 * collection, corruption and limits.
 */
import { createHash } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { CkptError } from '../../src/core/errors.js';
import { freePort, startEtcd } from '../../src/dev/index.js';
import type { Manifest__Output } from '../../src/gen/ckpt/v1/Manifest.js';
import type { ManifestRoot, ManifestRoot__Output } from '../../src/gen/ckpt/v1/ManifestRoot.js';
import { codec } from '../../src/proto/index.js';
import { createEtcdStore, pad, type EtcdStoreOptions } from '../../src/store/index.js';
import { etcdClient, eventually, uniquePrefix, useServers } from '../helpers/index.js';
import {
  commitRequest,
  dump,
  jobSpec,
  keysUnder,
  manifest,
  manifestCodec,
  reasonOf,
  storeFixture,
  summaryOf,
  type StoreFixture,
} from './store-fixtures.js';

const servers = useServers({ nats: false });

const rootCodec = codec<ManifestRoot, ManifestRoot__Output>('ManifestRoot');

function fixture(t: ExecutionContext, options: Partial<EtcdStoreOptions> = {}): StoreFixture {
  return storeFixture(t, servers, options);
}

test('createJob creates once, reads back afterwards, and loadJobs lists every job', async (t) => {
  const { store } = fixture(t);
  const first = await store.createJob(jobSpec('orders'), 1234);
  t.true(first.created);
  t.like(first.job, { state: 'JOB_STATE_RUNNING', createdAtMs: 1234, epoch: 1, latestCheckpointId: 0, idFloor: 1 });
  t.deepEqual(first.job.retainedCheckpointIds, []);
  t.deepEqual(first.job.spec, jobSpec('orders'));

  const again = await store.createJob(jobSpec('orders', 5), 9999);
  t.false(again.created);
  t.deepEqual(again.job, first.job, 'the second call reads back the first spec and counters');

  await store.createJob(jobSpec('billing'), 42);
  const { jobs } = await store.loadJobs();
  t.deepEqual(
    jobs.map((job) => job.spec.jobId),
    ['billing', 'orders'],
  );
  t.deepEqual(
    jobs.find((job) => job.spec.jobId === 'orders'),
    first.job,
  );
});

test('updateJob replaces spec and state, keeps the creation time, refuses unknown jobs', async (t) => {
  const { store } = fixture(t);
  await store.createJob(jobSpec('orders'), 1234);
  await store.updateJob('orders', jobSpec('orders', 3), 'JOB_STATE_CANCELED');
  const [job] = (await store.loadJobs()).jobs;
  t.like(job, { state: 'JOB_STATE_CANCELED', createdAtMs: 1234 });
  t.is(job?.spec.policy?.retained, 3);
  t.is(await reasonOf(t, store.updateJob('nope', jobSpec('nope'), 'JOB_STATE_RUNNING')), 'UNKNOWN_JOB');
});

test('reserveIds raises the id floor and never lowers it', async (t) => {
  const { store } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  await store.reserveIds('orders', 100);
  t.is((await store.loadJobs()).jobs[0]?.idFloor, 100);
  await store.reserveIds('orders', 7);
  t.is((await store.loadJobs()).jobs[0]?.idFloor, 100, 'a lower floor changes nothing and is no error');
  await store.reserveIds('orders', 10_000_000_000);
  t.is((await store.loadJobs()).jobs[0]?.idFloor, 10_000_000_000, 'ids compare numerically, not by length');
  t.is(await reasonOf(t, store.reserveIds('nope', 5)), 'UNKNOWN_JOB');
});

test('bumpEpoch moves the epoch only from the expected one', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  t.is(await store.bumpEpoch('orders', 1), 2);
  const before = await dump(etcd, prefix);
  const error = await t.throwsAsync(store.bumpEpoch('orders', 1), { instanceOf: CkptError });
  t.is(error?.reason, 'STALE_EPOCH');
  t.deepEqual(await dump(etcd, prefix), before);
  t.is(await store.bumpEpoch('orders', 2), 3);
  t.is((await store.loadJobs()).jobs[0]?.epoch, 3);
  t.is(await reasonOf(t, store.bumpEpoch('nope', 1)), 'UNKNOWN_JOB');
});

test('a small manifest is committed inline and reads back equal', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  const m = manifest('orders', 1, 1);
  const result = await store.commit(commitRequest(m));
  t.is(result.manifestParts, 0);
  t.is(result.manifestBytes, manifestCodec.encode(m).length);
  t.regex(result.revision, /^\d+$/);
  t.deepEqual(await store.readManifest('orders', 1), m);
  t.is(await store.readManifest('orders', 2), undefined);
  const [summary] = await store.listSummaries('orders');
  t.deepEqual(summary, { ...summaryOf(m), manifestBytes: result.manifestBytes, manifestParts: 0 });
  t.is(await etcd.get(`${prefix}jobs/orders/latest`).string(), pad(1));
  t.deepEqual(await keysUnder(etcd, `${prefix}jobs/orders/parts/`), []);
  const [job] = (await store.loadJobs()).jobs;
  t.like(job, { latestCheckpointId: 1, retainedCheckpointIds: [1] });
});

// Tests with manifests of 10,000 tasks run one at a time: encoding them keeps
// the event loop busy long enough to push concurrent tests past their deadlines.
test.serial('a manifest of 10,000 tasks is committed in parts and reads back equal', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  const m = manifest('orders', 1, 1, 10_000);
  const encodedBytes = manifestCodec.encode(m).length;
  t.true(encodedBytes > 1.5 * 1024 * 1024, `the manifest is ${encodedBytes} bytes`);

  const result = await store.commit(commitRequest(m));
  t.is(result.manifestBytes, encodedBytes);
  t.is(result.manifestParts, Math.ceil(encodedBytes / 1_048_576));
  t.true(result.manifestParts > 1);
  const parts = await etcd.getAll().prefix(`${prefix}jobs/orders/parts/`).exec();
  t.is(parts.kvs.length, result.manifestParts);
  for (const kv of parts.kvs) {
    t.true(kv.value.length <= 1_048_576);
    t.is(kv.key.toString().split('/').at(-1), createHash('sha256').update(kv.value).digest('hex'));
  }
  t.deepEqual(await store.readManifest('orders', 1), m);
  t.like((await store.listSummaries('orders'))[0], {
    manifestBytes: encodedBytes,
    manifestParts: result.manifestParts,
  });
  t.deepEqual(
    await store.collectGarbage('orders'),
    { deleted: 0, remaining: (await keysUnder(etcd, `${prefix}jobs/orders/parts/`)).length },
    'no part of a retained root is garbage',
  );
});

for (const tasks of [3, 10_000]) {
  const heavy = tasks > 1_000 ? test.serial : test;
  heavy(`a stale commit (${tasks} tasks) is refused with CHECKPOINT_COMPLETED and changes nothing`, async (t) => {
    const { store, etcd, prefix } = fixture(t);
    await store.createJob(jobSpec('orders'), 1);
    await store.commit(commitRequest(manifest('orders', 5, 1, tasks)));
    const before = await dump(etcd, prefix);
    for (const id of [4, 5]) {
      const error = await t.throwsAsync(store.commit(commitRequest(manifest('orders', id, 1, tasks))), {
        instanceOf: CkptError,
      });
      t.is(error?.reason, 'CHECKPOINT_COMPLETED', `checkpoint ${id}`);
      t.like(error?.ids, { jobId: 'orders', checkpointId: id });
    }
    t.deepEqual(await dump(etcd, prefix), before);
  });

  heavy(`a commit of a wrong epoch (${tasks} tasks) is refused with STALE_EPOCH and changes nothing`, async (t) => {
    const { store, etcd, prefix } = fixture(t);
    await store.createJob(jobSpec('orders'), 1);
    await store.bumpEpoch('orders', 1);
    const before = await dump(etcd, prefix);
    for (const epoch of [1, 3]) {
      const error = await t.throwsAsync(store.commit(commitRequest(manifest('orders', 1, epoch, tasks))), {
        instanceOf: CkptError,
      });
      t.is(error?.reason, 'STALE_EPOCH', `epoch ${epoch}`);
    }
    t.deepEqual(await dump(etcd, prefix), before);
    await t.notThrowsAsync(store.commit(commitRequest(manifest('orders', 1, 2, tasks))));
  });
}

test('a commit to an unknown job is refused with UNKNOWN_JOB', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  t.is(await reasonOf(t, store.commit(commitRequest(manifest('ghost', 1, 1)))), 'UNKNOWN_JOB');
  t.deepEqual(await dump(etcd, prefix), []);
});

test.serial('retrying a commit that went through returns its result instead of an error', async (t) => {
  const { store } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  const request = commitRequest(manifest('orders', 1, 1, 10_000));
  const first = await store.commit(request);
  t.deepEqual(await store.commit(request), first);
  const other = commitRequest(manifest('orders', 1, 1, 10_000));
  t.is(
    await reasonOf(t, store.commit(other)),
    'CHECKPOINT_COMPLETED',
    'a different manifest of the same id is refused',
  );
});

test('retention deletes subsumed checkpoints in the commit transaction', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders', 2), 1);
  for (let id = 1; id <= 5; id++) {
    await store.commit(commitRequest(manifest('orders', id, 1), id > 2 ? [id - 2] : []));
  }
  const keys = await keysUnder(etcd, `${prefix}jobs/orders/checkpoints/`);
  t.deepEqual(keys, [
    `${prefix}jobs/orders/checkpoints/${pad(4)}/root`,
    `${prefix}jobs/orders/checkpoints/${pad(4)}/summary`,
    `${prefix}jobs/orders/checkpoints/${pad(5)}/root`,
    `${prefix}jobs/orders/checkpoints/${pad(5)}/summary`,
  ]);
  t.deepEqual(
    (await store.listSummaries('orders')).map((s) => s.checkpointId),
    [5, 4],
  );
  t.like((await store.loadJobs()).jobs[0], { latestCheckpointId: 5, retainedCheckpointIds: [4, 5] });
  t.is(await store.readManifest('orders', 3), undefined);
});

test.serial('collectGarbage deletes orphan parts but never a part a retained root names', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders', 1), 1);
  const big = (id: number): Manifest__Output => manifest('orders', id, 1, 10_000);
  const first = await store.commit(commitRequest(big(1)));
  const orphan = `${prefix}jobs/orders/parts/${createHash('sha256').update('stray').digest('hex')}`;
  await etcd.put(orphan).value('stray');

  t.deepEqual(await store.collectGarbage('orders'), { deleted: 1, remaining: first.manifestParts });
  t.is(await etcd.get(orphan).string(), null);
  t.is((await keysUnder(etcd, `${prefix}jobs/orders/parts/`)).length, first.manifestParts);

  const m2 = big(2);
  const second = await store.commit(commitRequest(m2, [1]));
  t.is((await keysUnder(etcd, `${prefix}jobs/orders/parts/`)).length, first.manifestParts + second.manifestParts);
  t.deepEqual(
    await store.collectGarbage('orders'),
    { deleted: first.manifestParts, remaining: second.manifestParts },
    'the parts of the subsumed checkpoint go',
  );
  t.is((await keysUnder(etcd, `${prefix}jobs/orders/parts/`)).length, second.manifestParts);
  t.deepEqual(await store.readManifest('orders', 2), m2);
  t.deepEqual(await store.collectGarbage('orders'), { deleted: 0, remaining: second.manifestParts });

  await store.commit(commitRequest(manifest('orders', 3, 1, 3), [2]));
  t.deepEqual(
    await store.collectGarbage('orders'),
    { deleted: second.manifestParts, remaining: 0 },
    'an inline manifest names no part: none remain',
  );
  t.deepEqual(await store.collectGarbage('orders'), { deleted: 0, remaining: 0 });
});

test.serial('a corrupted or missing part is detected on read', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  await store.commit(commitRequest(manifest('orders', 1, 1, 10_000)));
  const [partKey, secondKey] = await keysUnder(etcd, `${prefix}jobs/orders/parts/`);
  if (partKey === undefined || secondKey === undefined) return t.fail('expected parts');
  const bytes = await etcd.get(partKey).buffer();
  if (bytes === null) return t.fail('part vanished');
  bytes[100] = (bytes[100] ?? 0) ^ 0xff;
  await etcd.put(partKey).value(bytes);
  const error = await t.throwsAsync(store.readManifest('orders', 1), { instanceOf: CkptError });
  t.is(error?.reason, 'INTERNAL');
  t.regex(error?.message ?? '', /manifest of checkpoint 1 of job orders is corrupt/);

  await etcd.delete().key(secondKey);
  const missing = await t.throwsAsync(store.readManifest('orders', 1), { instanceOf: CkptError });
  t.regex(missing?.message ?? '', /is corrupt: part \d+ \(.+\) (is missing|does not match)/);
});

test.serial('a large manifest is stored compressed, inline or in parts, and reads back equal', async (t) => {
  const { store, etcd, prefix } = fixture(t, { compressManifestAboveBytes: 8192, partBytes: 100_000 });
  await store.createJob(jobSpec('orders', 3), 1);
  const rootOf = async (id: number) => {
    const bytes = await etcd.get(`${prefix}jobs/orders/checkpoints/${pad(id)}/root`).buffer();
    if (bytes === null) throw new Error(`no root of checkpoint ${id}`);
    return rootCodec.decode(bytes);
  };
  const small = manifest('orders', 1, 1, 3);
  await store.commit(commitRequest(small));
  t.like(await rootOf(1), { compression: 'MANIFEST_COMPRESSION_UNSPECIFIED' });
  t.deepEqual(await store.readManifest('orders', 1), small);

  const large = manifest('orders', 2, 1, 1024);
  const encodedBytes = manifestCodec.encode(large).length;
  const result = await store.commit(commitRequest(large));
  const root = await rootOf(2);
  t.like(root, { compression: 'MANIFEST_COMPRESSION_DEFLATE', manifestBytes: encodedBytes, parts: [] });
  t.is(root.storedBytes, root.inline.length);
  t.true(root.storedBytes < encodedBytes * 0.6, `${root.storedBytes} of ${encodedBytes} bytes stored`);
  t.is(result.manifestBytes, encodedBytes, 'the summary reports the encoded size');
  t.deepEqual(await store.readManifest('orders', 2), large);

  const huge = manifest('orders', 3, 1, 10_000);
  await store.commit(commitRequest(huge));
  const hugeRoot = await rootOf(3);
  t.like(hugeRoot, { compression: 'MANIFEST_COMPRESSION_DEFLATE' });
  t.true(hugeRoot.parts.length > 1, 'compressed, and still above one part');
  t.deepEqual(await store.readManifest('orders', 3), huge);

  // Stored bytes that do not inflate to what the root records are corrupt.
  const broken = { ...root, inline: Buffer.from(root.inline.subarray(0, root.inline.length - 10)) };
  await etcd.put(`${prefix}jobs/orders/checkpoints/${pad(2)}/root`).value(Buffer.from(rootCodec.encode(broken)));
  const error = await t.throwsAsync(store.readManifest('orders', 2), { instanceOf: CkptError });
  t.regex(error?.message ?? '', /corrupt: .*stored bytes/);
});

test('a corrupted inline manifest is detected on read', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  await store.commit(commitRequest(manifest('orders', 1, 1)));
  const rootKey = `${prefix}jobs/orders/checkpoints/${pad(1)}/root`;
  const root = await etcd.get(rootKey).buffer();
  if (root === null) return t.fail('root vanished');
  // Flip a byte near the end: inside the inline manifest, before the trailing size and hash.
  const index = root.length - 90;
  root[index] = (root[index] ?? 0) ^ 0x01;
  await etcd.put(rootKey).value(root);
  const error = await t.throwsAsync(store.readManifest('orders', 1), { instanceOf: CkptError });
  t.is(error?.reason, 'INTERNAL');
  t.regex(error?.message ?? '', /corrupt/);
});

test('a commit needing more operations than a transaction allows is refused before anything is sent', async (t) => {
  const { store, etcd, prefix } = fixture(t, { maxRequestBytes: 40_000, partBytes: 10_000, maxTxnOps: 16 });
  await store.createJob(jobSpec('orders'), 1);
  const before = await dump(etcd, prefix);
  const error = await t.throwsAsync(store.commit(commitRequest(manifest('orders', 1, 1, 1_000))), {
    instanceOf: CkptError,
  });
  t.is(error?.reason, 'OVERSIZED');
  t.regex(error?.message ?? '', /maxTxnOps \(16\)/);
  t.deepEqual(await dump(etcd, prefix), before);
  const small = manifest('orders', 1, 1, 100);
  const fits = await store.commit(commitRequest(small));
  t.true(fits.manifestParts > 1, 'a manifest within the limits is split into small parts');
  t.deepEqual(await store.readManifest('orders', 1), small);
});

test('a commit larger than one request is refused before anything is sent', async (t) => {
  const { store, etcd, prefix } = fixture(t, { maxRequestBytes: 20_000, partBytes: 10_000 });
  await store.createJob(jobSpec('orders'), 1);
  const m = manifest('orders', 1, 1);
  const request = commitRequest(m);
  request.summary.abortMessage = 'x'.repeat(30_000);
  const before = await dump(etcd, prefix);
  t.is(await reasonOf(t, store.commit(request)), 'OVERSIZED');
  t.deepEqual(await dump(etcd, prefix), before);
});

test.serial('a request that etcd itself refuses as too large is OVERSIZED and leaves nothing behind', async (t) => {
  // Limits above etcd's own 1.5 MiB: the store sends, etcd refuses.
  const { store, etcd, prefix } = fixture(t, { maxRequestBytes: 3_000_000, partBytes: 2_000_000 });
  await store.createJob(jobSpec('orders'), 1);
  const before = await dump(etcd, prefix);
  const error = await t.throwsAsync(store.commit(commitRequest(manifest('orders', 1, 1, 10_000))), {
    instanceOf: CkptError,
  });
  t.like(error, { reason: 'OVERSIZED', retryable: false });
  t.regex(error?.message ?? '', /request is too large/);
  t.deepEqual(await dump(etcd, prefix), before, 'the smaller part that etcd took was removed again');
  await t.notThrowsAsync(store.commit(commitRequest(manifest('orders', 1, 1))), 'the client keeps working');
});

test('options are validated with errors naming the option', (t) => {
  const cases: [Partial<EtcdStoreOptions>, RegExp][] = [
    [{ partBytes: 1_500_000 }, /option partBytes must be at most maxRequestBytes \(1500000\)/],
    [{ partBytes: 2_000_000, maxRequestBytes: 2_000_000 }, /option partBytes/],
    [{ prefix: '/ckpt' }, /option prefix must end with "\/"/],
    [{ inlineManifestBytes: 2_000_000 }, /option inlineManifestBytes must be at most partBytes/],
    [{ requestTimeoutMs: 0 }, /option requestTimeoutMs must be a positive integer/],
    [{ maxTxnOps: 2 }, /option maxTxnOps/],
    [{ hosts: [] }, /option hosts/],
    [{ hosts: ['127.0.0.1:2379'] }, /option hosts/],
  ];
  for (const [options, message] of cases) {
    const error = t.throws(() => createEtcdStore({ hosts: ['http://127.0.0.1:2379'], ...options }), {
      instanceOf: CkptError,
    });
    t.is(error?.reason, 'MALFORMED');
    t.regex(error?.message ?? '', message);
  }
});

test.serial('a commit guarded by a leadership key fails once the key changed', async (t) => {
  const { store, etcd, prefix } = fixture(t);
  await store.createJob(jobSpec('orders'), 1);
  const leaderKey = `${prefix}leader`;
  const put = await etcd.put(leaderKey).value('coordinator-a').exec();
  const guard = { key: leaderKey, createRevision: put.header.revision };
  await t.notThrowsAsync(store.commit(commitRequest(manifest('orders', 1, 1)), guard));

  await etcd.delete().key(leaderKey);
  await etcd.put(leaderKey).value('coordinator-b');
  const before = await dump(etcd, prefix);
  const error = await t.throwsAsync(store.commit(commitRequest(manifest('orders', 2, 1, 10_000)), guard), {
    instanceOf: CkptError,
  });
  t.is(error?.reason, 'UNAVAILABLE');
  t.regex(error?.message ?? '', /no longer the leader/);
  t.deepEqual(await dump(etcd, prefix), before);
});

test('an unreachable etcd is reported as UNAVAILABLE and retryable', async (t) => {
  const port = await freePort();
  const store = createEtcdStore({
    hosts: [`http://127.0.0.1:${port}`],
    prefix: uniquePrefix(t).etcd,
    requestTimeoutMs: 500,
  });
  t.teardown(() => store.close());
  const error = await t.throwsAsync(store.loadJobs(), { instanceOf: CkptError });
  t.is(error?.reason, 'UNAVAILABLE');
  t.true(error?.retryable);
  t.truthy(error?.cause);
});

test('close does not close an injected client', async (t) => {
  const etcd = etcdClient(t, servers.etcdUrl);
  const store = createEtcdStore({ client: etcd, prefix: uniquePrefix(t).etcd });
  await store.createJob(jobSpec('orders'), 1);
  await store.close();
  await t.notThrowsAsync(etcd.get('anything').string());
});

test.serial(
  'an etcd that stops answering or dies fails calls within the deadline, and the store recovers',
  async (t) => {
    const etcd = await startEtcd();
    t.teardown(() => etcd.stop());
    const store = createEtcdStore({ hosts: [etcd.clientUrl], prefix: uniquePrefix(t).etcd, requestTimeoutMs: 500 });
    t.teardown(() => store.close());
    await store.createJob(jobSpec('orders'), 1);

    etcd.pause();
    const started = Date.now();
    const error = await t.throwsAsync(store.loadJobs(), { instanceOf: CkptError });
    t.like(error, { reason: 'UNAVAILABLE', retryable: true });
    t.true(Date.now() - started < 5_000, `failed after ${Date.now() - started} ms`);
    etcd.resume();
    await eventually(() => store.loadJobs(), { timeoutMs: 20_000, what: 'etcd answering again' });

    await etcd.kill();
    t.like(await t.throwsAsync(store.commit(commitRequest(manifest('orders', 1, 1))), { instanceOf: CkptError }), {
      reason: 'UNAVAILABLE',
      retryable: true,
    });
    await etcd.restart();
    const m = manifest('orders', 1, 1);
    await eventually(() => store.commit(commitRequest(m)), { timeoutMs: 20_000, what: 'a commit after the restart' });
    t.deepEqual(await store.readManifest('orders', 1), m);
  },
);
