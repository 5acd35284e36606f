/**
 * Coordinator high availability on real etcd and NATS: several coordinators
 * on one etcd prefix elect one leader; standbys refuse with NOT_LEADER
 * naming it and report NOT_SERVING; clients and workers given every
 * address follow the leader across a fail-over; checkpoint ids keep
 * increasing; a deposed leader's writes are refused by etcd; workers drop
 * control messages of an older leader term.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { emptyStatistics } from '../../src/core/checkpoint-stats.js';
import { controlMessageCodecs, ControlIntake, jobSubjects } from '../../src/bus/index.js';
import { createCoordinatorClient, createQueryClient, errorInfo } from '../../src/client/index.js';
import { LeadershipLostError } from '../../src/core/errors.js';
import type { CommitRequest } from '../../src/core/ports.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { Trigger__Output } from '../../src/gen/ckpt/v1/Trigger.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { subscribeControl } from '../../src/worker-protocol/index.js';
import { startSimulatedWorker, type SimulatedWorker } from '../sim/index.js';
import { createEtcdStore } from '../../src/store/index.js';
import { etcdClient, eventually, natsConnection, useServers } from '../helpers/index.js';
import {
  CLUSTER_FAILOVER_MS as FAILOVER_MS,
  CLUSTER_LEASE_TTL_MS as LEASE_TTL_MS,
  startCluster,
  type TestCluster,
} from '../helpers/cluster.js';
import { healthCheck } from '../helpers/refusals.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers();

/** `grpc.health.v1.Health/Check` of `service` at `address`: 1 SERVING, 2 NOT_SERVING. */
async function healthOf(t: ExecutionContext, address: string, service: string): Promise<number> {
  const raw = new grpc.Client(address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  return (await healthCheck(raw, service))[1] ?? 0;
}

/** A job of two source tasks and a sink. */
const spec: JobSpec = {
  jobId: 'job',
  tasks: [{ taskId: 'src-0' }, { taskId: 'src-1' }, { taskId: 'sink', inputs: ['src-0', 'src-1'] }],
};

/** A simulated worker running every task of `spec`, attached again after each change of leader. */
async function simWorker(t: ExecutionContext, cluster: TestCluster): Promise<SimulatedWorker> {
  const w = await startSimulatedWorker({
    coordinator: cluster.addresses,
    nats: [servers.natsUrl],
    subjectPrefix: cluster.prefix.nats,
    jobId: 'job',
    workerId: 'w',
    taskIds: ['src-0', 'src-1', 'sink'],
    spec,
    reattach: true,
    logger: silentLogger(),
  });
  t.teardown(() => w.close());
  return w;
}

/** A commit of an empty manifest of job `job`. */
function commitRequest(checkpointId: number, epoch: number): CommitRequest {
  const common = { jobId: 'job', checkpointId, epoch, snapshotType: 'SNAPSHOT_TYPE_FULL' as const };
  return {
    manifest: { ...common, triggeredAtMs: 1, completedAtMs: 2, tasks: [], fromSavepoint: null },
    summary: {
      ...common,
      state: 'CHECKPOINT_STATE_COMPLETED',
      abortReason: 'ABORT_REASON_UNSPECIFIED',
      abortMessage: '',
      manual: true,
      triggeredAtMs: 1,
      finishedAtMs: 2,
      totalTasks: 0,
      acknowledgedTasks: 0,
      stateSizeBytes: 0,
      persistedBytes: 0,
      maxAlignmentMs: 0,
      maxSnapshotMs: 0,
      manifestBytes: 0,
      manifestParts: 0,
      latestAcknowledgedAtMs: 0,
    },
    subsumedCheckpointIds: [],
  };
}

/** Every key and value under `prefix` but the jobs' statistics, which the leader writes on its own schedule. */
async function dump(etcd: Etcd3, prefix: string): Promise<Record<string, string>> {
  const all = await etcd.getAll().prefix(prefix).strings();
  return Object.fromEntries(Object.entries(all).filter(([key]) => !key.endsWith('/stats')));
}

test('exactly one of three coordinators leads; standbys refuse with NOT_LEADER naming it and are NOT_SERVING', async (t) => {
  const cluster = await startCluster(t, servers, 3);
  const leader = await cluster.leader();
  t.is(leader.advertise, leader.address, 'the default advertised address is the bound one');
  t.true((leader.term?.term ?? 0) > 0);
  const standbys = cluster.nodes.filter((node) => node !== leader);
  t.is(standbys.length, 2);

  for (const standby of standbys) {
    t.false(standby.isLeader);
    t.throws(() => standby.coordinator, { message: /NOT_LEADER/ });
    await eventually(() => standby.leader === leader.advertise, { what: 'the standby sees the leader' });
    const direct = createCoordinatorClient(standby.address, { retry: { timeoutMs: 0 } });
    const query = createQueryClient(standby.address, { retry: { timeoutMs: 0 } });
    t.teardown(() => {
      direct.close();
      query.close();
    });
    const refused = await t.throwsAsync(direct.getJob({ jobId: 'job' }));
    t.like(errorInfo(refused), { code: grpc.status.UNAVAILABLE, reason: 'NOT_LEADER', leader: leader.advertise });
    const listed = await t.throwsAsync(query.listJobs({}));
    t.like(errorInfo(listed), { code: grpc.status.UNAVAILABLE, reason: 'NOT_LEADER', leader: leader.advertise });
    t.is(await healthOf(t, standby.address, 'ckpt.v1.Coordinator'), 2, 'NOT_SERVING');
    t.is(await healthOf(t, standby.address, 'ckpt.v1.CheckpointQuery'), 2, 'NOT_SERVING');
    t.is(await healthOf(t, standby.address, ''), 1, 'the process itself serves');
  }
  t.is(await healthOf(t, leader.address, 'ckpt.v1.Coordinator'), 1, 'SERVING');

  // A client that knows a standby first is sent on to the leader among its addresses.
  const viaStandby = createCoordinatorClient([standbys[0]?.address ?? '', leader.advertise]);
  t.teardown(() => viaStandby.close());
  const submitted = await viaStandby.submitJob({ spec });
  t.true(submitted.created);
  t.is(viaStandby.address, leader.advertise);
  t.is(leader.coordinator.getJob('job').spec?.jobId, 'job');

  // The CLI takes a comma-separated list, here the standbys first.
  const list = [...standbys.map((s) => s.address), leader.advertise].join(',');
  const { stdout } = await promisify(execFile)(
    'node',
    ['--import=tsx', 'src/cli/main.ts', '--address', list, '--json', 'jobs'],
    { timeout: 30_000 },
  );
  t.deepEqual(
    (JSON.parse(stdout) as Array<{ spec: { jobId: string } }>).map((j) => j.spec.jobId),
    ['job'],
  );
});

test('after the leader is killed another takes over; ids keep increasing and a worker follows it', async (t) => {
  const cluster = await startCluster(t, servers, 3);
  const first = await cluster.leader();
  const client = createCoordinatorClient(cluster.addresses);
  const query = createQueryClient([...cluster.addresses].reverse());
  t.teardown(() => {
    client.close();
    query.close();
  });
  await client.submitJob({ spec });
  const w = await simWorker(t, cluster);
  await eventually(async () => (await client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING');
  const before = await client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(before.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const beforeId = before.checkpoint?.checkpointId ?? 0;
  await w.waitForComplete(beforeId, { timeoutMs: 5000 });
  const firstTerm = first.term?.term ?? 0;
  const epoch = w.epoch;

  const killedAt = Date.now();
  await first.kill();
  const alive = cluster.nodes.filter((node) => node !== first);
  const second = await cluster.leader(alive);
  const tookOverMs = Date.now() - killedAt;
  t.true(tookOverMs < FAILOVER_MS, `took over after ${tookOverMs} ms`);
  t.true((second.term?.term ?? 0) > firstTerm, 'the new leader has a higher term');

  // The worker attaches to the new leader in its epoch, and the job carries on without a rollback.
  await eventually(() => w.welcome?.term === cluster.term(), { what: 'the worker welcomed by the new leader' });
  await eventually(async () => (await client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING', {
    timeoutMs: FAILOVER_MS,
    what: 'the job running under the new leader',
  });
  t.is(w.epoch, epoch);
  t.true(w.term > firstTerm);
  const job = await client.getJob({ jobId: 'job' });
  t.is(job.job?.latestCheckpointId, beforeId, 'the new leader loaded the committed state');

  const after = await client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(after.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const afterId = after.checkpoint?.checkpointId ?? 0;
  t.true(afterId > beforeId, `checkpoint ids keep increasing: ${beforeId} then ${afterId}`);
  const complete = await w.waitForComplete(afterId, { timeoutMs: 5000 });
  t.is(complete.term, cluster.term() ?? -1);
  const listed = await query.listCheckpoints({ jobId: 'job' });
  t.true(listed.checkpoints.some((c) => c.checkpointId === afterId));
  t.is(client.address, cluster.nodes.find((node) => node.isLeader)?.advertise ?? '', 'the client talks to the leader');
});

test('a leader whose election key vanishes steps down; its old guard can no longer write to etcd', async (t) => {
  const cluster = await startCluster(t, servers, 2);
  const first = await cluster.leader();
  const guard = { key: first.term?.key ?? '', createRevision: first.term?.createRevision ?? '' };
  t.true(guard.key.startsWith(`${cluster.prefix.etcd}election/leader/`));
  const client = createCoordinatorClient(cluster.addresses);
  t.teardown(() => client.close());
  await client.submitJob({ spec });
  const w = await simWorker(t, cluster);
  await eventually(async () => (await client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING');
  const done = await client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const latest = done.checkpoint?.checkpointId ?? 0;

  // Someone deletes the leader's key (as an expired lease would): it steps down, the other leads.
  const etcd = etcdClient(t, servers.etcdUrl);
  await etcd.delete().key(guard.key);
  await eventually(() => !first.isLeader, { timeoutMs: 2 * LEASE_TTL_MS, what: 'the old leader steps down' });
  t.throws(() => first.coordinator, { message: /NOT_LEADER/ });
  const second = await cluster.leader();
  t.true((second.term?.term ?? 0) > Number(guard.createRevision), 'a new term');

  // What the deposed leader would write is refused by etcd and changes nothing.
  const store = createEtcdStore({ hosts: [servers.etcdUrl], prefix: cluster.prefix.etcd, logger: silentLogger() });
  t.teardown(() => store.close());
  const { jobs } = await store.loadJobs();
  const stored = jobs.find((j) => j.spec.jobId === 'job');
  const epoch = stored?.epoch ?? 0;
  const before = await dump(etcd, `${cluster.prefix.etcd}jobs/`);
  const request = commitRequest(latest + 5000, epoch);
  const commit = await t.throwsAsync(store.commit(request, guard), { instanceOf: LeadershipLostError });
  t.is(commit?.reason, 'UNAVAILABLE');
  t.regex(commit?.message ?? '', /no longer the leader/);
  await t.throwsAsync(store.bumpEpoch('job', epoch, guard), { instanceOf: LeadershipLostError });
  await t.throwsAsync(store.reserveIds('job', 10_000_000, guard), { instanceOf: LeadershipLostError });
  if (stored === undefined) throw new Error('job not in etcd');
  await t.throwsAsync(store.updateJob('job', stored.spec, 'JOB_STATE_CANCELED', guard), {
    instanceOf: LeadershipLostError,
  });
  await t.throwsAsync(store.createJob({ ...stored.spec, jobId: 'other' }, 1, guard), {
    instanceOf: LeadershipLostError,
  });
  const stats = await store.readStatistics('job');
  await t.throwsAsync(store.putStatistics('job', emptyStatistics(1), guard), { instanceOf: LeadershipLostError });
  t.deepEqual(await store.readStatistics('job'), stats, 'the statistics are unchanged');
  t.deepEqual(await dump(etcd, `${cluster.prefix.etcd}jobs/`), before, 'etcd is unchanged');

  // The new leader's guard holds, and the job goes on under it once the worker is back.
  await eventually(() => w.welcome?.term === cluster.term(), { what: 'the worker welcomed by the new leader' });
  await eventually(async () => (await client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING', {
    timeoutMs: FAILOVER_MS,
    what: 'the job running under the new leader',
  });
  const next = await client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((next.checkpoint?.checkpointId ?? 0) > latest);
  t.true(w.term > Number(guard.createRevision));
});

test('workers drop control messages of an older leader term', async (t) => {
  const cluster = await startCluster(t, servers, 1);
  const leader = await cluster.leader();
  const client = createCoordinatorClient(cluster.addresses);
  t.teardown(() => client.close());
  await client.submitJob({ spec });
  const w = await simWorker(t, cluster);
  const term = leader.term?.term ?? 0;
  t.is(w.term, term, 'the welcome carries the term');
  await eventually(async () => (await client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING');

  const nc = await natsConnection(t, servers.natsUrl);
  const subjects = jobSubjects(`${cluster.prefix.nats}.job`);
  const codecs = controlMessageCodecs();
  const trigger = (checkpointId: number, messageTerm: number): Uint8Array =>
    codecs.trigger.encode({ jobId: 'job', checkpointId, epoch: w.epoch, term: messageTerm });

  // The simulated worker: an older term is dropped, the current one is taken.
  const dropped = w.waitFor('dropped', ([d]) => d.what === 'trigger', { timeoutMs: 5000 });
  nc.publish(subjects.trigger, trigger(9_001, term - 1));
  const [drop] = await dropped;
  t.like(drop, { what: 'trigger', term: term - 1, currentTerm: term });
  const taken = w.waitFor('trigger', ([m]) => m.checkpointId === 9_002, { timeoutMs: 5000 });
  nc.publish(subjects.trigger, trigger(9_002, term));
  t.is((await taken)[0].term, term);

  // The SDK's intake, shared with the simulated worker: the same rule; a newer term is held until the
  // session confirms it, never believed from NATS alone.
  const seen: Trigger__Output[] = [];
  const intake = new ControlIntake({
    jobId: 'job',
    epoch: w.epoch,
    term,
    handlers: { trigger: (m) => seen.push(m), complete: () => {}, abort: () => {}, recover: () => {} },
    onDrop: () => {},
  });
  const unsubscribe = await subscribeControl(nc, subjects, intake, true, () => {});
  t.teardown(unsubscribe);
  nc.publish(subjects.trigger, trigger(9_003, term - 1));
  nc.publish(subjects.trigger, trigger(9_004, term + 1));
  nc.publish(subjects.trigger, trigger(9_005, term));
  await eventually(() => seen.some((m) => m.checkpointId === 9_005));
  await nc.flush();
  t.deepEqual(
    seen.map((m) => m.checkpointId),
    [9_005],
    'an older term is dropped, a newer one held',
  );
  t.is(intake.term, term, 'a NATS message does not raise the term');
  intake.confirmTerm(term + 1);
  t.deepEqual(
    seen.map((m) => m.checkpointId),
    [9_005, 9_004],
    'the held message is handled once the session confirms its term',
  );
});

test('an SDK worker given every address follows the leader across a fail-over in its epoch', async (t) => {
  const cluster = await startCluster(t, servers, 2);
  const first = await cluster.leader();
  const client = createCoordinatorClient(cluster.addresses);
  t.teardown(() => client.close());
  const sdkSpec: JobSpec = { jobId: 'sdk', tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }] };
  await client.submitJob({ spec: sdkSpec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-ha-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const worker = new Worker({
    coordinator: cluster.addresses,
    nats: [servers.natsUrl],
    jobId: 'sdk',
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: silentLogger(),
  });
  worker.addTask('src', fixedSource(20));
  worker.addTask('count', {
    process(record, ctx) {
      ctx.state.set('n', ((ctx.state.get('n') as number | undefined) ?? 0) + 1);
      void record;
    },
  });
  t.teardown(() => worker.stop());
  await worker.start();
  await eventually(async () => (await client.getJob({ jobId: 'sdk' })).job?.attempt === 'JOB_ATTEMPT_RUNNING');
  const before = await client.triggerCheckpoint({ jobId: 'sdk', wait: true }, { deadlineMs: 10_000 });
  t.is(before.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const epoch = worker.epoch;

  const welcomed = worker.waitFor('welcome', (welcome) => welcome.term > (first.term?.term ?? 0), {
    timeoutMs: FAILOVER_MS * 2,
  });
  await first.kill();
  await cluster.leader(cluster.nodes.filter((node) => node !== first));
  const [welcome] = await welcomed;
  t.is(welcome.epoch, epoch, 'the job resumes in the same epoch');
  await eventually(async () => (await client.getJob({ jobId: 'sdk' })).job?.attempt === 'JOB_ATTEMPT_RUNNING', {
    timeoutMs: FAILOVER_MS,
  });
  const after = await client.triggerCheckpoint({ jobId: 'sdk', wait: true }, { deadlineMs: 10_000 });
  t.is(after.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((after.checkpoint?.checkpointId ?? 0) > (before.checkpoint?.checkpointId ?? 0));
  t.is(worker.epoch, epoch);
});
