/**
 * A job's records in etcd are untrusted: each kind of corrupt record,
 * written with a raw etcd client, quarantines exactly that job with a reason
 * naming the key, while every other job loads unchanged; the store's writes
 * refuse such a job too, and write nothing that loading would refuse.
 */
import test, { type ExecutionContext } from 'ava';
import type { StoredJobState } from '../../src/core/ports.js';
import type { CheckpointSummary, CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { RestorePoint, RestorePoint__Output } from '../../src/gen/ckpt/v1/RestorePoint.js';
import type { StoredJob, StoredJob__Output } from '../../src/gen/ckpt/v1/StoredJob.js';
import { codec } from '../../src/proto/index.js';
import { CorruptRecordError, pad } from '../../src/store/index.js';
import { useServers } from '../helpers/index.js';
import {
  commitRequest,
  dump,
  jobSpec,
  manifest,
  reasonOf,
  storeFixture,
  summaryOf,
  type StoreFixture,
} from './store-fixtures.js';

const servers = useServers({ nats: false });

const storedJobCodec = codec<StoredJob, StoredJob__Output>('StoredJob');
const summaryCodec = codec<CheckpointSummary, CheckpointSummary__Output>('CheckpointSummary');
const restorePointCodec = codec<RestorePoint, RestorePoint__Output>('RestorePoint');

const JOBS = ['alpha', 'victim', 'omega'];
/** Bytes that are no protobuf message: wire type 7 does not exist. */
const GARBAGE = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]);

/** Three jobs, each with checkpoints 1 (epoch 1) and 2 (epoch 2) retained; the victim restored to 1 in epoch 3. */
interface Scene extends StoreFixture {
  /** Every job as loaded before anything was corrupted. */
  before: StoredJobState[];
  /** The full key of one of the victim's records, e.g. `epoch`. */
  key(rest: string): string;
  /** `jobs/victim/checkpoints/<padded id>/<leaf>`. */
  checkpointKey(checkpointId: number, leaf?: 'root' | 'summary' | ''): string;
}

async function scene(t: ExecutionContext): Promise<Scene> {
  const fixture = storeFixture(t, servers);
  const { store, prefix } = fixture;
  for (const jobId of JOBS) {
    await store.createJob(jobSpec(jobId, 2), 1_700_000_000_000);
    await store.commit(commitRequest(manifest(jobId, 1, 1)));
    await store.bumpEpoch(jobId, 1);
    await store.commit(commitRequest(manifest(jobId, 2, 2)));
  }
  await store.bumpEpoch('victim', 2, undefined, 1);
  const loaded = await store.loadJobs();
  t.deepEqual(loaded.quarantined, [], 'nothing is quarantined before the corruption');
  t.deepEqual(
    loaded.jobs.map((job) => job.spec.jobId),
    JOBS.toSorted(),
  );
  const key = (rest: string): string => `${prefix}jobs/victim/${rest}`;
  const checkpointKey = (id: number, leaf = ''): string => key(`checkpoints/${pad(id)}/${leaf}`);
  return { ...fixture, before: loaded.jobs, key, checkpointKey };
}

/**
 * Loading quarantines the victim alone, with a reason that names the key
 * (`reason` is matched after the prefix); every other job loads as before;
 * createJob refuses the victim with JOB_QUARANTINED and changes nothing.
 */
async function assertVictimQuarantined(t: ExecutionContext, s: Scene, reason: RegExp): Promise<void> {
  const loaded = await s.store.loadJobs();
  t.deepEqual(
    loaded.jobs,
    s.before.filter((job) => job.spec.jobId !== 'victim'),
    'every other job loads unchanged',
  );
  t.is(loaded.quarantined.length, 1, JSON.stringify(loaded.quarantined));
  const [quarantined] = loaded.quarantined;
  t.is(quarantined?.jobId, 'victim');
  const text = quarantined?.reason ?? '';
  t.true(text.startsWith(`${s.prefix}jobs/victim/`), text);
  t.regex(text.slice(s.prefix.length), reason);
  t.true(/^[\x20-\x7e]*$/.test(text) && text.length < 1_500, 'the reason is short printable ASCII');

  const etcdBefore = await dump(s.etcd, s.prefix);
  const error = await t.throwsAsync(s.store.createJob(jobSpec('victim', 2), 1), { instanceOf: CorruptRecordError });
  t.like(error, { reason: 'JOB_QUARANTINED', retryable: false, ids: { jobId: 'victim' } });
  t.is(`${error?.key ?? ''}: ${error?.problem ?? ''}`, text, 'createJob names the same key and problem');
  t.deepEqual(await dump(s.etcd, s.prefix), etcdBefore, 'createJob changed nothing');
}

function storedJob(fields: Partial<StoredJob>): Buffer {
  const job: StoredJob = { spec: jobSpec('victim', 2), state: 'JOB_STATE_RUNNING', createdAtMs: 1, ...fields };
  return Buffer.from(storedJobCodec.encode(job));
}

function summary(checkpointId: number, epoch: number, fields: Partial<CheckpointSummary> = {}): Buffer {
  return Buffer.from(summaryCodec.encode({ ...summaryOf(manifest('victim', checkpointId, epoch)), ...fields }));
}

function restorePoint(checkpointId: number, epoch: number): Buffer {
  return Buffer.from(restorePointCodec.encode({ checkpointId, epoch }));
}

interface Corruption {
  what: string;
  corrupt: (s: Scene) => Promise<unknown>;
  reason: RegExp;
}

const validSpec = jobSpec('victim', 2);
const validPolicy = validSpec.policy ?? raise('a normalised spec has a policy');

function raise(message: string): never {
  throw new Error(message);
}
const corruptions: Corruption[] = [
  {
    what: 'spec bytes that do not decode',
    corrupt: (s) => s.etcd.put(s.key('spec')).value(GARBAGE).exec(),
    reason: /^jobs\/victim\/spec: does not decode: /,
  },
  {
    what: 'the spec of another job id',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(storedJob({ spec: jobSpec('alpha', 2) }))
        .exec(),
    reason: /^jobs\/victim\/spec: holds the spec of job "alpha"$/,
  },
  {
    what: 'an invalid spec',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(storedJob({ spec: { ...validSpec, tasks: [{ taskId: 'sink', inputs: ['ghost'], labels: {} }] } }))
        .exec(),
    reason: /^jobs\/victim\/spec: holds an invalid spec: MALFORMED: task sink reads from unknown task "ghost"$/,
  },
  {
    what: 'a spec that is not normalised',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(storedJob({ spec: { ...validSpec, policy: { ...validPolicy, timeoutMs: 0 } } }))
        .exec(),
    reason: /^jobs\/victim\/spec: holds a spec that differs from its normalised form$/,
  },
  {
    what: 'a stored job without a spec',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(Buffer.from(storedJobCodec.encode({ state: 1, createdAtMs: 1 })))
        .exec(),
    reason: /^jobs\/victim\/spec: holds no spec$/,
  },
  {
    what: 'a run state other than running or canceled',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(storedJob({ state: 'JOB_STATE_QUARANTINED' }))
        .exec(),
    reason: /^jobs\/victim\/spec: holds the run state "JOB_STATE_QUARANTINED"$/,
  },
  {
    what: 'a creation time beyond any date',
    corrupt: (s) =>
      s.etcd
        .put(s.key('spec'))
        .value(storedJob({ createdAtMs: 2 ** 60 }))
        .exec(),
    reason: /^jobs\/victim\/spec: holds the creation time 1152921504606847000$/,
  },
  {
    what: 'a missing spec beside the other records',
    corrupt: (s) => s.etcd.delete().key(s.key('spec')).exec(),
    reason:
      /^jobs\/victim\/spec: is missing, but the job has an epoch, a latest checkpoint id, an id floor, a restore point, checkpoints$/,
  },
  {
    what: 'epoch "abc"',
    corrupt: (s) => s.etcd.put(s.key('epoch')).value('abc').exec(),
    reason: /^jobs\/victim\/epoch: "abc" is not a 20-digit decimal number$/,
  },
  {
    what: 'epoch 0',
    corrupt: (s) => s.etcd.put(s.key('epoch')).value(pad(0)).exec(),
    reason: /^jobs\/victim\/epoch: 0 is out of range \(1 to 4503599627370496\)$/,
  },
  {
    what: 'an epoch at the largest exact integer',
    corrupt: (s) => s.etcd.put(s.key('epoch')).value(pad(Number.MAX_SAFE_INTEGER)).exec(),
    reason: /^jobs\/victim\/epoch: 9007199254740991 is out of range/,
  },
  {
    what: 'an id floor of twenty nines',
    corrupt: (s) => s.etcd.put(s.key('id-floor')).value('9'.repeat(20)).exec(),
    reason: /^jobs\/victim\/id-floor: 99999999999999999999 is out of range \(1 to 4503599627370496\)$/,
  },
  {
    what: 'an id floor with a binary byte',
    corrupt: (s) =>
      s.etcd
        .put(s.key('id-floor'))
        .value(Buffer.from(`${pad(7).slice(1)}\n`))
        .exec(),
    reason: /^jobs\/victim\/id-floor: "0000000000000000007\\x0a" is not a 20-digit decimal number$/,
  },
  {
    what: 'a missing latest',
    corrupt: (s) => s.etcd.delete().key(s.key('latest')).exec(),
    reason: /^jobs\/victim\/latest: is missing$/,
  },
  {
    what: 'a latest checkpoint whose root is gone',
    corrupt: (s) => s.etcd.delete().key(s.checkpointKey(2, 'root')).exec(),
    reason: /^jobs\/victim\/checkpoints\/00000000000000000002\/root: is missing: the latest checkpoint 2 has no root$/,
  },
  {
    what: 'a retained checkpoint above the latest',
    corrupt: (s) => s.etcd.put(s.key('latest')).value(pad(1)).exec(),
    reason:
      /^jobs\/victim\/checkpoints\/00000000000000000002\/root: is retained, above the latest committed checkpoint 1$/,
  },
  {
    what: 'a latest summary that does not decode',
    corrupt: (s) => s.etcd.put(s.checkpointKey(2, 'summary')).value(GARBAGE).exec(),
    reason: /^jobs\/victim\/checkpoints\/00000000000000000002\/summary: does not decode: /,
  },
  {
    what: 'a latest summary of another checkpoint',
    corrupt: (s) => s.etcd.put(s.checkpointKey(2, 'summary')).value(summary(1, 1)).exec(),
    reason:
      /^jobs\/victim\/checkpoints\/00000000000000000002\/summary: it is the summary of checkpoint 1 of job "victim"$/,
  },
  {
    what: 'a latest summary of a later epoch',
    corrupt: (s) => s.etcd.put(s.checkpointKey(2, 'summary')).value(summary(2, 9)).exec(),
    reason: /^jobs\/victim\/checkpoints\/00000000000000000002\/summary: holds epoch 9, after the job's epoch 3$/,
  },
  {
    what: 'a latest summary that was never completed',
    corrupt: (s) =>
      s.etcd
        .put(s.checkpointKey(2, 'summary'))
        .value(summary(2, 2, { state: 'CHECKPOINT_STATE_PENDING' }))
        .exec(),
    reason: /^jobs\/victim\/checkpoints\/00000000000000000002\/summary: its state is "CHECKPOINT_STATE_PENDING"$/,
  },
  {
    what: 'a missing latest summary',
    corrupt: (s) => s.etcd.delete().key(s.checkpointKey(2, 'summary')).exec(),
    reason:
      /^jobs\/victim\/checkpoints\/00000000000000000002\/summary: is missing: the latest checkpoint 2 has no summary$/,
  },
  {
    what: 'restore point bytes that do not decode',
    corrupt: (s) => s.etcd.put(s.key('restore-point')).value(GARBAGE).exec(),
    reason: /^jobs\/victim\/restore-point: does not decode: /,
  },
  {
    what: 'a restore point above the latest checkpoint',
    corrupt: (s) => s.etcd.put(s.key('restore-point')).value(restorePoint(7, 3)).exec(),
    reason: /^jobs\/victim\/restore-point: names checkpoint 7, not one up to the latest committed checkpoint 2$/,
  },
  {
    what: 'a restore point of an epoch not reached',
    corrupt: (s) => s.etcd.put(s.key('restore-point')).value(restorePoint(1, 9)).exec(),
    reason: /^jobs\/victim\/restore-point: names epoch 9, not one up to the job's epoch 3$/,
  },
  {
    what: 'a restore point in force whose checkpoint is gone',
    corrupt: (s) => s.etcd.delete().prefix(s.checkpointKey(1)).exec(),
    reason: /^jobs\/victim\/restore-point: names checkpoint 1, which recoveries restore from but is not retained$/,
  },
  {
    what: 'more than 1000 keys under the checkpoints',
    corrupt: async (s) => {
      for (let batch = 0; batch < 8; batch++) {
        const puts = Array.from({ length: 125 }, (_, i) => ({
          request_put: { key: Buffer.from(s.key(`checkpoints/zz-${batch}-${i}`)), value: Buffer.from('x') },
        }));
        await s.etcd.kv.txn({ success: puts });
      }
    },
    reason: /^jobs\/victim\/checkpoints\/: holds more than 1000 keys$/,
  },
  {
    // Together larger than the 4 MiB grpc-js accepts by default in one response.
    what: 'values of 1.4 MiB each in one job',
    corrupt: async (s) => {
      const big = Buffer.alloc(1_400_000, 'x');
      for (const name of ['spec', 'epoch', 'restore-point', 'id-floor']) await s.etcd.put(s.key(name)).value(big);
    },
    reason: /^jobs\/victim\/spec: holds no spec$/,
  },
];

for (const { what, corrupt, reason } of corruptions) {
  test(`${what} quarantines that job alone`, async (t) => {
    const s = await scene(t);
    await corrupt(s);
    await assertVictimQuarantined(t, s, reason);
  });
}

test('keys the layout does not know are surprising, not harmful: nothing is quarantined', async (t) => {
  const s = await scene(t);
  const orphanPart = 'ab'.repeat(32);
  for (const key of [
    s.key('notes'),
    s.key('checkpoints/zzz'),
    s.checkpointKey(2, 'zz-extra' as 'root'),
    s.key(`parts/${orphanPart}`),
    s.key('parts/not-a-hash'),
    `${s.prefix}jobs/ghost/notes`,
    `${s.prefix}jobs/not a job id/spec`,
  ]) {
    await s.etcd.put(key).value(GARBAGE);
  }
  t.deepEqual(await s.store.loadJobs(), { jobs: s.before, quarantined: [] });
});

test('a quarantined job loads again once its record is repaired', async (t) => {
  const s = await scene(t);
  const epoch = await s.etcd.get(s.key('epoch')).buffer();
  await s.etcd.put(s.key('epoch')).value('abc');
  await assertVictimQuarantined(t, s, /^jobs\/victim\/epoch: /);
  await s.etcd.put(s.key('epoch')).value(epoch ?? '');
  t.deepEqual(await s.store.loadJobs(), { jobs: s.before, quarantined: [] });
});

test('writes that find a corrupt record refuse with JOB_QUARANTINED and change nothing', async (t) => {
  const s = await scene(t);
  await s.etcd.put(s.key('epoch')).value('abc');
  await s.etcd.put(s.key('id-floor')).value('9');
  await s.etcd.put(s.key('spec')).value(GARBAGE);
  const before = await dump(s.etcd, s.prefix);
  const refusals = [
    s.store.bumpEpoch('victim', 3),
    s.store.reserveIds('victim', 5_000),
    s.store.commit(commitRequest(manifest('victim', 3, 3))),
    s.store.updateJob('victim', jobSpec('victim', 2), 'JOB_STATE_CANCELED'),
  ];
  for (const refusal of refusals) {
    const error = await t.throwsAsync(refusal, { instanceOf: CorruptRecordError });
    t.like(error, { reason: 'JOB_QUARANTINED', ids: { jobId: 'victim' } });
    t.true(error?.key.startsWith(s.key('')), error?.key);
  }
  t.deepEqual(await dump(s.etcd, s.prefix), before);
});

test('the store writes nothing that loading would refuse', async (t) => {
  const s = await scene(t);
  const before = await dump(s.etcd, s.prefix);
  const unsorted = { ...validSpec, jobId: 'fresh', tasks: validSpec.tasks.toReversed() };
  const tooFar = 2 ** 52 + 1;
  const refusals = [
    s.store.createJob(unsorted, 1),
    s.store.createJob({ ...validSpec, jobId: 'fresh', policy: { ...validPolicy, retained: 0 } }, 1),
    s.store.createJob({ ...validSpec, jobId: 'fresh' }, -1),
    s.store.updateJob('alpha', jobSpec('alpha', 2), 'JOB_STATE_QUARANTINED'),
    s.store.updateJob('alpha', { ...jobSpec('alpha', 2), tasks: [] }, 'JOB_STATE_RUNNING'),
    s.store.reserveIds('alpha', tooFar),
    s.store.bumpEpoch('alpha', 2 ** 52),
    s.store.commit(commitRequest(manifest('alpha', tooFar, 2))),
  ];
  for (const refusal of refusals) t.is(await reasonOf(t, refusal), 'MALFORMED');
  t.deepEqual(await dump(s.etcd, s.prefix), before);
});
