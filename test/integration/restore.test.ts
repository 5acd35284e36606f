/**
 * Restoring a job to a retained checkpoint an operator chose (RestoreJob):
 * every task restores from it in a new epoch while `latest` in etcd stays
 * where it was; recoveries restore from it again until the next commit,
 * also after a coordinator restart; bad requests change nothing.
 */
import test from 'ava';
import { createCoordinatorClient, errorInfo } from '../../src/client/index.js';
import { resolveConfig } from '../../src/config/index.js';
import { startTcpProxy } from '../../src/dev/index.js';
import type { Manifest__Output } from '../../src/gen/ckpt/v1/Manifest.js';
import type { RestorePoint, RestorePoint__Output } from '../../src/gen/ckpt/v1/RestorePoint.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import { CkptError } from '../../src/core/errors.js';
import { validateJobSpec } from '../../src/core/validate.js';
import { silentLogger } from '../../src/log/index.js';
import { codec } from '../../src/proto/index.js';
import { runCoordinator } from '../../src/server/run.js';
import type { SimulatedWorker } from '../sim/index.js';
import { createEtcdStore, pad, type EtcdStore } from '../../src/store/index.js';
import { eventually, uniquePrefix, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();
const restorePointCodec = codec<RestorePoint, RestorePoint__Output>('RestorePoint');
const COMMIT_MS = 10_000;

/** Triggers a checkpoint and waits until it completes; returns its id. */
async function commit(c: TestCoordinator): Promise<number> {
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: COMMIT_MS });
  if (res.checkpoint?.state !== 'CHECKPOINT_STATE_COMPLETED')
    throw new Error(`checkpoint not completed: ${res.checkpoint?.state}`);
  return res.checkpoint.checkpointId;
}

/** The `latest`, epoch and restore point of job `job` as etcd holds them. */
async function stored(c: TestCoordinator) {
  const key = (name: string) => `${c.prefix.etcd}jobs/job/${name}`;
  const point = await c.etcd.get(key('restore-point')).buffer();
  return {
    latest: await c.etcd.get(key('latest')).string(),
    epoch: await c.etcd.get(key('epoch')).string(),
    restorePoint: point === null ? undefined : restorePointCodec.decode(point),
  };
}

/** Every key and value of the jobs in etcd, without the election keys. */
async function jobRecords(c: TestCoordinator): Promise<Record<string, string>> {
  const all = await c.dump();
  return Object.fromEntries(Object.entries(all).filter(([key]) => key.startsWith(`${c.prefix.etcd}jobs/`)));
}

/** The restore command a worker got in `epoch`, as `[checkpoint id, task ids]`. */
async function restoredIn(w: SimulatedWorker, epoch: number): Promise<[number, string[]]> {
  const r = await eventually(() => w.restored.find((x) => x.epoch === epoch), { what: `restore in epoch ${epoch}` });
  return [r.checkpointId, r.snapshots.map((s) => s.taskId)];
}

function byTask(list: readonly TaskSnapshot__Output[]): TaskSnapshot__Output[] {
  return [...list].sort((x, y) => x.taskId.localeCompare(y.taskId));
}

/** Two workers on a job of two sources and a sink, running. */
async function runningJob(c: TestCoordinator, retained: number, reattach = false) {
  const spec = fanInSpec('job', 2, 1, { retained });
  await c.client.submitJob({ spec });
  const a = await c.worker({ jobId: 'job', workerId: 'a', taskIds: ['src-0', 'src-1'], spec, reattach });
  const b = await c.worker({ jobId: 'job', workerId: 'b', taskIds: ['sink-0'], spec, reattach });
  await c.started('job');
  return { a, b };
}

test('a restore rolls every task back to an older retained checkpoint until the next commit', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const { a, b } = await runningJob(c, 3);
  const c1 = await commit(c);
  await commit(c);
  const c3 = await commit(c);
  b.setBehaviour('sink-0', 'silent');
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;

  const res = await c.client.restoreJob({ jobId: 'job', checkpointId: c1 });
  t.deepEqual(res, { epoch: 2, checkpointId: c1 });
  t.is((await eventually(() => a.aborted.get(pending))).reason, 'ABORT_REASON_JOB_RESTORED');
  t.deepEqual(await restoredIn(a, 2), [c1, ['src-0', 'src-1']]);
  t.deepEqual(await restoredIn(b, 2), [c1, ['sink-0']]);
  const restore = a.restored.find((r) => r.epoch === 2);
  t.deepEqual(byTask(restore?.snapshots ?? []), byTask(a.acked.get(c1) ?? []), 'what the tasks acknowledged for it');
  t.deepEqual(await eventually(() => a.recovered.find((r) => r.epoch === 2)), {
    jobId: 'job',
    epoch: 2,
    checkpointId: c1,
    term: c.running.term?.term,
  });
  t.deepEqual(await stored(c), {
    latest: pad(c3),
    epoch: pad(2),
    restorePoint: { checkpointId: c1, epoch: 2 },
  });
  b.setBehaviour('sink-0', 'ack');
  await c.started('job');
  t.like((await c.client.getJob({ jobId: 'job' })).job, {
    epoch: 2,
    latestCheckpointId: c3,
    restorePoint: { checkpointId: c1, epoch: 2 },
  });

  b.fail('sink-0', 'lost its disk');
  t.deepEqual(await restoredIn(a, 3), [c1, ['src-0', 'src-1']], 'a failure before the next commit restores it again');
  t.deepEqual(await restoredIn(b, 3), [c1, ['sink-0']]);
  await c.started('job');

  const c4 = await commit(c);
  t.true(c4 > Math.max(c3, pending), 'ids continue above every id used');
  t.is((await stored(c)).latest, pad(c4));
  t.is((await c.client.getJob({ jobId: 'job' })).job?.restorePoint, null, 'the commit ends the restore point');
  b.fail('sink-0', 'lost its disk again');
  t.deepEqual(await restoredIn(a, 4), [c4, ['src-0', 'src-1']], 'after the next commit, failures restore from it');
  t.deepEqual(await restoredIn(b, 4), [c4, ['sink-0']]);
  t.deepEqual(await stored(c), {
    latest: pad(c4),
    epoch: pad(4),
    restorePoint: { checkpointId: c1, epoch: 2 },
  });
});

test('checkpoint 0 restores the latest checkpoint', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const { a } = await runningJob(c, 2);
  await commit(c);
  const latest = await commit(c);
  t.deepEqual(await c.client.restoreJob({ jobId: 'job', checkpointId: 0 }), { epoch: 2, checkpointId: latest });
  t.deepEqual(await restoredIn(a, 2), [latest, ['src-0', 'src-1']]);
  t.like(await stored(c), { latest: pad(latest), restorePoint: { checkpointId: latest, epoch: 2 } });
});

test('a restarted coordinator restores from the restore point until the next commit', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const { a, b } = await runningJob(c, 2, true);
  const c1 = await commit(c);
  const c2 = await commit(c);
  await c.client.restoreJob({ jobId: 'job', checkpointId: c1 });
  await c.started('job');

  await c.restart();
  await c.started('job');
  t.like((await c.client.getJob({ jobId: 'job' })).job, {
    epoch: 2,
    latestCheckpointId: c2,
    restorePoint: { checkpointId: c1, epoch: 2 },
  });
  b.fail('sink-0', 'crashed');
  t.deepEqual(await restoredIn(a, 3), [c1, ['src-0', 'src-1']]);
  t.deepEqual(await restoredIn(b, 3), [c1, ['sink-0']]);
  await c.started('job');
  const c3 = await commit(c);
  t.true(c3 > c2);

  await c.restart();
  await c.started('job');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.restorePoint, null);
  b.fail('sink-0', 'crashed again');
  t.deepEqual(await restoredIn(a, 4), [c3, ['src-0', 'src-1']]);
  t.deepEqual(await restoredIn(b, 4), [c3, ['sink-0']]);
  t.is((await stored(c)).latest, pad(c3));
});

test('bad restore requests are refused with a reason and change nothing', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const { a } = await runningJob(c, 1);
  const spec = fanInSpec('empty', 1, 1);
  await c.client.submitJob({ spec });
  const dropped = await commit(c);
  const kept = await commit(c);
  const before = await c.dump();
  const refusal = async (jobId: string, checkpointId: number) => {
    const err = await t.throwsAsync(c.client.restoreJob({ jobId, checkpointId }));
    const info = errorInfo(err);
    return { reason: info?.reason, message: err?.message ?? '' };
  };

  t.like(await refusal('nope', kept), { reason: 'UNKNOWN_JOB' });
  t.like(await refusal('bad job id', kept), { reason: 'MALFORMED' });
  const gone = await refusal('job', dropped);
  t.is(gone.reason, 'UNKNOWN_CHECKPOINT');
  t.regex(gone.message, new RegExp(`no retained checkpoint ${dropped} to restore; retained: ${kept}$`));
  t.like(await refusal('job', kept + 1000), { reason: 'UNKNOWN_CHECKPOINT' });
  const none = await refusal('empty', 0);
  t.is(none.reason, 'UNKNOWN_CHECKPOINT');
  t.regex(none.message, /no committed checkpoint to restore; retained: none$/);
  t.deepEqual(await c.dump(), before);
  t.is((await c.client.getJob({ jobId: 'job' })).job?.epoch, 1);
  t.deepEqual(
    a.restored.map((r) => r.epoch),
    [1],
  );

  await c.client.cancelJob({ jobId: 'job' });
  const canceled = await c.dump();
  t.like(await refusal('job', kept), { reason: 'JOB_CANCELED' });
  t.deepEqual(await c.dump(), canceled);
});

test('a restore while the job is recovering is refused with TASKS_NOT_READY', async (t) => {
  const proxy = await startTcpProxy({ target: new URL(servers.etcdUrl).host });
  t.teardown(() => proxy.close());
  const c = await startTestCoordinator(t, servers, { etcd: [`http://${proxy.address}`], leaseTtlMs: 20_000 });
  const { a, b } = await runningJob(c, 2);
  const c1 = await commit(c);
  const c2 = await commit(c);
  b.setBehaviour('sink-0', 'silent');
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const before = await c.dump();

  // With etcd held back, the recovery stops at its epoch bump, after aborting what was pending.
  proxy.pause();
  b.fail('sink-0', 'crashed');
  t.is((await eventually(() => a.aborted.get(pending))).reason, 'ABORT_REASON_TASK_FAILURE');
  const err = await t.throwsAsync(c.client.restoreJob({ jobId: 'job', checkpointId: c1 }));
  t.is(errorInfo(err)?.reason, 'TASKS_NOT_READY');
  t.deepEqual(await c.dump(), before);
  proxy.restore();

  t.deepEqual(
    await restoredIn(a, 2),
    [c2, ['src-0', 'src-1']],
    'the recovery restores the latest, not the refused one',
  );
  t.deepEqual(await stored(c), { latest: pad(c2), epoch: pad(2), restorePoint: undefined });
});

test('RestoreJob needs the token and is refused by a standby', async (t) => {
  const c = await startTestCoordinator(t, servers, { authToken: 'secret' });
  await runningJob(c, 1);
  const latest = await commit(c);
  const before = await jobRecords(c);
  const anonymous = createCoordinatorClient(c.address);
  t.teardown(() => anonymous.close());
  const unauthenticated = await t.throwsAsync(anonymous.restoreJob({ jobId: 'job', checkpointId: latest }));
  t.is(errorInfo(unauthenticated)?.reason, 'UNAUTHENTICATED');

  const standby = await runCoordinator(
    resolveConfig(
      {
        etcd: [servers.etcdUrl],
        nats: [servers.natsUrl],
        listen: '127.0.0.1:0',
        etcdPrefix: c.prefix.etcd,
        subjectPrefix: c.prefix.nats,
        authToken: 'secret',
        logLevel: 'silent',
        stateUriSchemes: 'file,nats-obj,sim',
      },
      {},
    ),
    silentLogger(),
  );
  t.teardown(() => standby.stop());
  const toStandby = createCoordinatorClient(standby.address, { token: 'secret', retry: { timeoutMs: 0 } });
  t.teardown(() => toStandby.close());
  const notLeader = await t.throwsAsync(toStandby.restoreJob({ jobId: 'job', checkpointId: latest }));
  t.is(errorInfo(notLeader)?.reason, 'NOT_LEADER');
  t.deepEqual(await jobRecords(c), before, 'the standby only added its candidacy to etcd');
});

/** A one-task manifest of `checkpointId` committed in `epoch`. */
function manifest(jobId: string, checkpointId: number, epoch: number): Manifest__Output {
  return {
    jobId,
    checkpointId,
    epoch,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: 1,
    completedAtMs: 2,
    tasks: [{ taskId: 'only', state: null, positions: [], metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' }],
    fromSavepoint: null,
  };
}

/** Commits checkpoint `id` of job `job` in `epoch` straight to the store. */
async function storeCommit(store: EtcdStore, id: number, epoch: number): Promise<void> {
  await store.commit({
    manifest: manifest('job', id, epoch),
    summary: {
      jobId: 'job',
      checkpointId: id,
      epoch,
      state: 'CHECKPOINT_STATE_COMPLETED',
      abortReason: 'ABORT_REASON_UNSPECIFIED',
      abortMessage: '',
      snapshotType: 'SNAPSHOT_TYPE_FULL',
      manual: false,
      triggeredAtMs: 1,
      finishedAtMs: 2,
      totalTasks: 1,
      acknowledgedTasks: 1,
      stateSizeBytes: 0,
      persistedBytes: 0,
      maxAlignmentMs: 0,
      maxSnapshotMs: 0,
      manifestBytes: 0,
      manifestParts: 0,
      latestAcknowledgedAtMs: 0,
    },
    subsumedCheckpointIds: [],
  });
}

test('the store writes the restore point with the epoch, only while the checkpoint is retained', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const store = createEtcdStore({ hosts: [servers.etcdUrl], prefix });
  t.teardown(() => store.close());
  await store.createJob(validateJobSpec({ jobId: 'job', tasks: [{ taskId: 'only' }], policy: { retained: 2 } }), 1);
  await storeCommit(store, 1, 1);
  t.is(await store.bumpEpoch('job', 1), 2);
  await storeCommit(store, 2, 2);
  t.like((await store.loadJobs()).jobs[0], { latestCheckpointId: 2, latestCheckpointEpoch: 2 });
  t.is((await store.loadJobs()).jobs[0]?.restorePoint, undefined);

  const before = await store.client.getAll().prefix(prefix).strings();
  const refused = await t.throwsAsync(store.bumpEpoch('job', 2, undefined, 7), { instanceOf: CkptError });
  t.is(refused?.reason, 'UNKNOWN_CHECKPOINT');
  const stale = await t.throwsAsync(store.bumpEpoch('job', 1, undefined, 1), { instanceOf: CkptError });
  t.is(stale?.reason, 'STALE_EPOCH');
  t.deepEqual(await store.client.getAll().prefix(prefix).strings(), before);

  t.is(await store.bumpEpoch('job', 2, undefined, 1), 3);
  t.like((await store.loadJobs()).jobs[0], {
    epoch: 3,
    latestCheckpointId: 2,
    latestCheckpointEpoch: 2,
    restorePoint: { checkpointId: 1, epoch: 3 },
  });
});
