/**
 * Committed checkpoints read back are untrusted: tampered manifest roots
 * and parts, duplicate parts, oversized roots, inflation past the recorded
 * size, manifests that do not belong to their key, and bad summaries are
 * refused with an error naming job, checkpoint and key, before anything is
 * read that need not be; a commit never writes what a read would refuse.
 */
import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { CkptError } from '../../src/core/errors.js';
import type { Manifest, Manifest__Output } from '../../src/gen/ckpt/v1/Manifest.js';
import type { ManifestRoot, ManifestRoot__Output } from '../../src/gen/ckpt/v1/ManifestRoot.js';
import { codec } from '../../src/proto/index.js';
import { CorruptRecordError, createEtcdStore, pad } from '../../src/store/index.js';
import { useServers } from '../helpers/index.js';
import {
  commitRequest,
  dump,
  jobSpec,
  keysUnder,
  manifest,
  manifestCodec,
  storeFixture,
  summaryOf,
  type StoreFixture,
} from './store-fixtures.js';
import type { CheckpointSummary, CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';

const servers = useServers({ nats: false });

const rootCodec = codec<ManifestRoot, ManifestRoot__Output>('ManifestRoot');
const summaryCodec = codec<CheckpointSummary, CheckpointSummary__Output>('CheckpointSummary');
/** Small parts, so that a manifest of 200 tasks takes several. */
const PART_BYTES = 10_000;

/** Job `orders` with checkpoint 1 in parts and checkpoint 2 inline; job `other` beside it. */
interface Scene extends StoreFixture {
  big: Manifest__Output;
  rootKey(checkpointId: number): string;
  root(checkpointId: number): Promise<ManifestRoot__Output>;
  /** Writes a root, or raw bytes as the root. */
  putRoot(checkpointId: number, root: ManifestRoot | Buffer): Promise<void>;
  /** The keys of the parts of checkpoint 1, in the order its root names them. */
  partKeys: string[];
}

async function scene(t: ExecutionContext): Promise<Scene> {
  const fixture = storeFixture(t, servers, { partBytes: PART_BYTES });
  const { store, etcd, prefix } = fixture;
  await store.createJob(jobSpec('orders', 3), 1);
  await store.createJob(jobSpec('other', 3), 1);
  const big = manifest('orders', 1, 1, 200);
  t.true((await store.commit(commitRequest(big))).manifestParts >= 3);
  await store.commit(commitRequest(manifest('orders', 2, 1)));
  await store.commit(commitRequest(manifest('other', 1, 1, 200)));
  const rootKey = (id: number): string => `${prefix}jobs/orders/checkpoints/${pad(id)}/root`;
  const root = async (id: number): Promise<ManifestRoot__Output> =>
    rootCodec.decode((await etcd.get(rootKey(id)).buffer()) ?? Buffer.alloc(0));
  const putRoot = async (id: number, value: ManifestRoot | Buffer): Promise<void> => {
    await etcd.put(rootKey(id)).value(Buffer.isBuffer(value) ? value : Buffer.from(rootCodec.encode(value)));
  };
  const partKeys = (await root(1)).parts.map((part) => `${prefix}jobs/orders/parts/${part.sha256}`);
  return { ...fixture, big, rootKey, root, putRoot, partKeys };
}

/** readManifest of checkpoint 1 of `orders` fails with `reason`, naming job, checkpoint and `key`. */
async function assertRefused(
  t: ExecutionContext,
  s: Scene,
  expected: { reason?: string; key: string; problem: RegExp },
): Promise<void> {
  const error = await t.throwsAsync(s.store.readManifest('orders', 1), { instanceOf: CkptError });
  t.like(error, { reason: expected.reason ?? 'INTERNAL', retryable: false, ids: { jobId: 'orders', checkpointId: 1 } });
  t.true(error?.message.includes(`(key ${expected.key})`), error?.message);
  t.regex(error?.message ?? '', /checkpoint 1 of job orders/);
  if (error instanceof CorruptRecordError) {
    t.is(error.key, expected.key);
    t.regex(error.problem, expected.problem);
  } else {
    t.regex(error?.message ?? '', expected.problem);
  }
  t.is((await s.store.readManifest('other', 1))?.tasks.length, 200, 'other manifests read as before');
}

/** An inline, uncompressed root that holds `m` exactly: every size and hash matches. */
function inlineRoot(m: Manifest, checkpointId: number, epoch: number): ManifestRoot {
  const encoded = Buffer.from(manifestCodec.encode(m));
  return {
    checkpointId,
    epoch,
    inline: encoded,
    parts: [],
    manifestBytes: encoded.length,
    manifestSha256: createHash('sha256').update(encoded).digest('hex'),
    compression: 'MANIFEST_COMPRESSION_UNSPECIFIED',
    storedBytes: encoded.length,
  };
}

test('a part of another size than recorded is refused as soon as it is read', async (t) => {
  const s = await scene(t);
  const key = s.partKeys[1] ?? '';
  const bytes = (await s.etcd.get(key).buffer()) ?? Buffer.alloc(0);
  await s.etcd.put(key).value(bytes.subarray(0, bytes.length - 1));
  await assertRefused(t, s, { key, problem: /^part 1 \([0-9a-f]{64}\) has 9999 bytes, 10000 recorded$/ });
});

test('a part of its recorded size with other bytes is refused by its hash', async (t) => {
  const s = await scene(t);
  const key = s.partKeys[0] ?? '';
  const bytes = (await s.etcd.get(key).buffer()) ?? Buffer.alloc(0);
  bytes[7] = (bytes[7] ?? 0) ^ 0x40;
  await s.etcd.put(key).value(bytes);
  await assertRefused(t, s, { key, problem: /^part 0 \([0-9a-f]{64}\) does not match its recorded size or hash$/ });
});

test('a missing part is refused naming its key', async (t) => {
  const s = await scene(t);
  const key = s.partKeys[2] ?? '';
  await s.etcd.delete().key(key);
  await assertRefused(t, s, { key, problem: /^part 2 \([0-9a-f]{64}\) is missing$/ });
});

// The parts are deleted first: the refusal comes from the root alone, before any part is read.
const rootTampering: {
  what: string;
  tamper: (root: ManifestRoot__Output) => ManifestRoot | Buffer;
  problem: RegExp;
}[] = [
  {
    what: 'a root naming the same part twice',
    tamper: (root) => ({
      ...root,
      parts: [root.parts[0], ...root.parts.slice(1, -1), root.parts[0]].flatMap((p) => (p ? [p] : [])),
    }),
    problem: /^part \d+ \([0-9a-f]{64}\) is named twice \(duplicate parts\)$/,
  },
  {
    what: 'a root naming another checkpoint',
    tamper: (root) => ({ ...root, checkpointId: 2 }),
    problem: /^the root names checkpoint 2$/,
  },
  {
    what: 'part sizes that do not add up to the stored size',
    tamper: (root) => ({ ...root, parts: root.parts.map((p, i) => (i === 0 ? { ...p, sizeBytes: 5 } : p)) }),
    problem: /^the parts record \d+ bytes together, \d+ stored bytes recorded$/,
  },
  {
    what: 'inline bytes beside parts',
    tamper: (root) => ({ ...root, inline: Buffer.from('x') }),
    problem: /^the root holds both inline bytes and parts$/,
  },
  {
    what: 'a part hash that is no hash',
    tamper: (root) => ({ ...root, parts: root.parts.map((p, i) => (i === 0 ? { ...p, sha256: '../latest' } : p)) }),
    problem: /^part 0 has the hash "\.\.\/latest"$/,
  },
  {
    what: 'more parts than a commit can name',
    tamper: (root) => ({
      ...root,
      parts: Array.from({ length: 200 }, (_, i) => ({
        sha256: createHash('sha256').update(`${i}`).digest('hex'),
        sizeBytes: 1,
      })),
    }),
    problem: /^the root names 200 parts, more than a commit can \(maxTxnOps 128\)$/,
  },
  {
    what: 'an unknown compression',
    // The encoder knows only the enum's values: the compression field (tag 0x38) is the last but one.
    tamper: (root) => {
      const bytes = Buffer.from(rootCodec.encode({ ...root, compression: 'MANIFEST_COMPRESSION_DEFLATE' }));
      bytes[bytes.lastIndexOf(Buffer.from([0x38, 0x01])) + 1] = 7;
      return bytes;
    },
    problem: /^unknown compression "7"$/,
  },
  {
    what: 'a compressed root without a stored size',
    tamper: (root) => ({ ...root, compression: 'MANIFEST_COMPRESSION_DEFLATE', storedBytes: 0 }),
    problem: /^a compressed manifest records no stored size$/,
  },
  {
    what: 'a manifest hash that is no hash',
    tamper: (root) => ({ ...root, manifestSha256: 'abc' }),
    problem: /^the root's manifest hash "abc" is not 64 lowercase hex digits$/,
  },
];

for (const { what, tamper, problem } of rootTampering) {
  test(`${what} is refused before any part is read`, async (t) => {
    const s = await scene(t);
    await s.putRoot(1, tamper(await s.root(1)));
    await s.etcd.delete().prefix(`${s.prefix}jobs/orders/parts/`);
    await assertRefused(t, s, { key: s.rootKey(1), problem });
  });
}

test('a root recording more than maxManifestBytes is refused with OVERSIZED before any part is read', async (t) => {
  const s = await scene(t);
  await s.putRoot(1, { ...(await s.root(1)), manifestBytes: 2 ** 40 });
  await s.etcd.delete().prefix(`${s.prefix}jobs/orders/parts/`);
  await assertRefused(t, s, {
    reason: 'OVERSIZED',
    key: s.rootKey(1),
    problem: /records 1099511627776 encoded bytes, more than maxManifestBytes \(268435456\); nothing was read/,
  });
});

test('a store with a smaller maxManifestBytes neither reads nor commits a larger manifest', async (t) => {
  const s = await scene(t);
  const small = createEtcdStore({ hosts: [servers.etcdUrl], prefix: s.prefix, maxManifestBytes: 20_000 });
  t.teardown(() => small.close());
  const read = await t.throwsAsync(small.readManifest('orders', 1), { instanceOf: CkptError });
  t.is(read?.reason, 'OVERSIZED');
  t.regex(read?.message ?? '', /more than maxManifestBytes \(20000\); nothing was read/);
  t.deepEqual(await small.readManifest('orders', 2), await s.store.readManifest('orders', 2), 'a small one reads');

  const before = await dump(s.etcd, s.prefix);
  const commit = await t.throwsAsync(small.commit(commitRequest(manifest('orders', 3, 1, 200))), {
    instanceOf: CkptError,
  });
  t.like(commit, { reason: 'OVERSIZED', ids: { jobId: 'orders', checkpointId: 3 } });
  t.regex(commit?.message ?? '', /more than maxManifestBytes \(20000\); nothing was sent/);
  t.deepEqual(await dump(s.etcd, s.prefix), before);
});

test('a stream that inflates past its recorded size is refused', async (t) => {
  const s = await scene(t);
  const bomb = deflateRawSync(Buffer.alloc(10_000_000));
  await s.putRoot(1, {
    ...inlineRoot(manifest('orders', 1, 1), 1, 1),
    inline: bomb,
    storedBytes: bomb.length,
    manifestBytes: 1_000,
    compression: 'MANIFEST_COMPRESSION_DEFLATE',
  });
  await assertRefused(t, s, { key: s.rootKey(1), problem: /^the stored bytes do not decompress: / });
});

const manifestTampering: { what: string; stored: () => ManifestRoot; problem: RegExp }[] = [
  {
    what: 'the manifest of another checkpoint',
    stored: () => inlineRoot(manifest('orders', 7, 1), 1, 1),
    problem: /^it holds checkpoint 7 of job "orders"$/,
  },
  {
    what: 'the manifest of another job',
    stored: () => inlineRoot(manifest('other', 1, 1), 1, 1),
    problem: /^it holds checkpoint 1 of job "other"$/,
  },
  {
    what: 'a manifest of another epoch than its root',
    stored: () => inlineRoot(manifest('orders', 1, 1), 1, 2),
    problem: /^it holds epoch 1, the root 2$/,
  },
  {
    what: 'a manifest naming a task twice',
    stored: () => {
      const m = manifest('orders', 1, 1, 2);
      return inlineRoot({ ...m, tasks: [...m.tasks, ...m.tasks.slice(0, 1)] }, 1, 1);
    },
    problem: /^a task snapshot is invalid: task task-00000 appears twice$/,
  },
  {
    what: 'a manifest with an offset beyond exact integers',
    stored: () => {
      const m = manifest('orders', 1, 1, 1);
      const tasks = m.tasks.map((task) => ({ ...task, positions: [{ input: 'orders/0', offset: 2 ** 60 }] }));
      return inlineRoot({ ...m, tasks }, 1, 1);
    },
    problem:
      /^a task snapshot is invalid: MALFORMED: positions\.offset 1152921504606847000 must be an integer from 0 to 9007199254740991$/,
  },
  {
    what: 'a manifest with a checksum that is no SHA-256',
    stored: () => {
      const m = manifest('orders', 1, 1, 1);
      const tasks = m.tasks.map((task) => ({ ...task, state: { ...task.state, checksum: 'crc32:1234' } }));
      return inlineRoot({ ...m, tasks }, 1, 1);
    },
    problem:
      /^a task snapshot is invalid: MALFORMED: state\.checksum "crc32:1234" must be sha256: and 64 lowercase hex digits$/,
  },
  {
    what: 'a manifest with a task id that is no id',
    stored: () => {
      const m = manifest('orders', 1, 1, 1);
      return inlineRoot({ ...m, tasks: m.tasks.map((task) => ({ ...task, taskId: 'a.b' })) }, 1, 1);
    },
    problem: /^a task snapshot is invalid: MALFORMED: task_id "a\.b" must be/,
  },
];

for (const { what, stored, problem } of manifestTampering) {
  test(`${what} under a root whose sizes and hashes match is refused`, async (t) => {
    const s = await scene(t);
    await s.putRoot(1, stored());
    await assertRefused(t, s, { key: s.rootKey(1), problem });
  });
}

test('a manifest of state under any URI scheme reads back: which schemes are accepted is checked at acknowledgement', async (t) => {
  const s = await scene(t);
  const m = manifest('orders', 3, 1);
  const tasks = m.tasks.map((task) => ({ ...task, state: { ...task.state, uri: `s3://bucket/${task.taskId}` } }));
  const request = commitRequest({ ...m, tasks } as Manifest__Output);
  await s.store.commit(request);
  t.deepEqual(await s.store.readManifest('orders', 3), request.manifest);
});

test('a summary that does not decode or names another checkpoint is refused by listSummaries', async (t) => {
  const s = await scene(t);
  const key = `${s.prefix}jobs/orders/checkpoints/${pad(1)}/summary`;
  for (const [value, problem] of [
    [Buffer.from([0xff, 0xff, 0xff]), /^does not decode: /],
    [
      Buffer.from(summaryCodec.encode(summaryOf(manifest('other', 1, 1)))),
      /^it is the summary of checkpoint 1 of job "other"$/,
    ],
  ] as const) {
    await s.etcd.put(key).value(value);
    const error = await t.throwsAsync(s.store.listSummaries('orders'), { instanceOf: CorruptRecordError });
    t.like(error, { reason: 'INTERNAL', key, ids: { jobId: 'orders', checkpointId: 1 } });
    t.regex(error?.problem ?? '', problem);
  }
  const loaded = await s.store.loadJobs();
  t.deepEqual(loaded.quarantined, [], 'a summary other than the latest one quarantines nothing');
  t.is((await s.store.listSummaries('other')).length, 1);
});

test('a commit whose stored bytes would repeat a part is refused and sends nothing', async (t) => {
  const s = await scene(t);
  // 1,000 identical shared pieces of 100 encoded bytes each: every 10,000-byte part inside them is the same.
  const piece = { uri: `file:///${'p'.repeat(86)}`, sizeBytes: 1 };
  const m = manifest('orders', 3, 1, 1);
  const tasks = m.tasks.map((task) => ({
    ...task,
    state: { uri: 'file:///s', sizeBytes: 1, shared: Array(1_000).fill(piece) },
  }));
  const before = await dump(s.etcd, s.prefix);
  const error = await t.throwsAsync(s.store.commit(commitRequest({ ...m, tasks } as Manifest__Output)), {
    instanceOf: CkptError,
  });
  t.like(error, { reason: 'MALFORMED', ids: { jobId: 'orders', checkpointId: 3 } });
  t.regex(error?.message ?? '', /repeats part [0-9a-f]{64}; a root cannot name a part twice/);
  t.deepEqual(await dump(s.etcd, s.prefix), before);
});

test('garbage collection stops at an unreadable root and deletes nothing', async (t) => {
  const s = await scene(t);
  const orphan = `${s.prefix}jobs/orders/parts/${'cd'.repeat(32)}`;
  await s.etcd.put(orphan).value('stray');
  await s.etcd.put(s.rootKey(2)).value(Buffer.from([0xff, 0xff]));
  const before = await keysUnder(s.etcd, `${s.prefix}jobs/orders/parts/`);
  const error = await t.throwsAsync(s.store.collectGarbage('orders'), { instanceOf: CorruptRecordError });
  t.like(error, { reason: 'INTERNAL', key: s.rootKey(2), ids: { jobId: 'orders', checkpointId: 2 } });
  t.deepEqual(await keysUnder(s.etcd, `${s.prefix}jobs/orders/parts/`), before);
});
