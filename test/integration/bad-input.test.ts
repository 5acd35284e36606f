/**
 * Invariant 7: bad input gets a clear error with a machine-readable reason
 * and changes nothing, in etcd or in the coordinator.
 */
import * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import {
  createCoordinatorClient,
  errorInfo,
  SessionRequests,
  type SessionRequestBody,
} from '../../src/client/index.js';
import type { CkptError, ErrorReason } from '../../src/core/errors.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { TaskSnapshot } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { healthCheck, reflectionList, refused } from '../helpers/refusals.js';

const servers = useServers();

function snap(taskId: string, uri = `file:///state/${taskId}`): TaskSnapshot {
  return {
    taskId,
    state: { uri, sizeBytes: 10, checksum: `sha256:${'ab'.repeat(32)}` },
    positions: taskId.startsWith('src') ? [{ input: 'in', offset: 5 }] : [],
  };
}

/** A job whose worker `w0` never acknowledges by itself, so the test acknowledges by hand. */
async function setUp(t: ExecutionContext, c: TestCoordinator) {
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 60_000, tolerableFailures: -1, maxConcurrent: 4 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec, behaviour: 'silent' });
  await c.started('job');
  const epoch = w.epoch;
  const sessionToken = w.welcome?.sessionToken ?? '';
  t.true(sessionToken.length >= 32, 'the welcome carries a session token');
  const trigger = async () => (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const ack = (checkpointId: number, snapshots: TaskSnapshot[], extra: Record<string, unknown> = {}) =>
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch,
      checkpointId,
      workerId: 'w0',
      snapshots,
      sessionToken,
      ...extra,
    });
  const completed = await trigger();
  await ack(completed, [snap('src-0'), snap('sink-0')]);
  await c.running.coordinator.settled();
  const aborted = await trigger();
  await c.client.declineCheckpoint({
    jobId: 'job',
    epoch,
    checkpointId: aborted,
    workerId: 'w0',
    declines: [{ taskId: 'sink-0', message: 'disk full' }],
    sessionToken,
  });
  const pending = await trigger();
  t.is(
    (await c.query.getCheckpoint({ jobId: 'job', checkpointId: completed })).checkpoint?.state,
    'CHECKPOINT_STATE_COMPLETED',
  );
  t.is(
    (await c.query.getCheckpoint({ jobId: 'job', checkpointId: aborted })).checkpoint?.state,
    'CHECKPOINT_STATE_ABORTED',
  );
  return { epoch, ack, completed, aborted, pending, sessionToken };
}

test('bad acknowledgements are refused with their reason and change nothing', async (t) => {
  const c = await startTestCoordinator(t, servers, { maxMessageBytes: 1024 * 1024 });
  const { epoch, ack, completed, aborted, pending, sessionToken } = await setUp(t, c);
  const before = await c.dump();

  await refused(
    t,
    c.client.acknowledgeCheckpoint({
      jobId: 'nope',
      epoch,
      checkpointId: pending,
      workerId: 'w0',
      snapshots: [snap('src-0')],
    }),
    'UNKNOWN_JOB',
    grpc.status.NOT_FOUND,
  );
  await refused(t, ack(pending, [snap('ghost')]), 'UNKNOWN_TASK', grpc.status.NOT_FOUND);
  await refused(t, ack(pending, [snap('src-0'), snap('ghost')]), 'UNKNOWN_TASK');
  await refused(t, ack(pending, [snap('src-0')], { epoch: epoch + 1 }), 'STALE_EPOCH', grpc.status.FAILED_PRECONDITION);
  await refused(t, ack(pending, [snap('src-0')], { epoch: epoch - 1 }), 'STALE_EPOCH');
  await refused(t, ack(999_999, [snap('src-0')]), 'UNKNOWN_CHECKPOINT', grpc.status.NOT_FOUND);
  await refused(t, ack(aborted, [snap('src-0')]), 'CHECKPOINT_ABORTED', grpc.status.FAILED_PRECONDITION);
  await refused(t, ack(completed, [snap('src-0')]), 'CHECKPOINT_COMPLETED', grpc.status.FAILED_PRECONDITION);
  await refused(
    t,
    ack(pending, [snap('src-0')], { workerId: 'intruder' }),
    'PERMISSION_DENIED',
    grpc.status.PERMISSION_DENIED,
  );
  await refused(t, ack(pending, [snap('src-0')], { sessionToken: '' }), 'PERMISSION_DENIED');
  await refused(t, ack(pending, [snap('src-0')], { sessionToken: 'forged' }), 'PERMISSION_DENIED');
  await refused(t, ack(pending, [snap('src-0')], { sessionToken: 'é\n' }), 'PERMISSION_DENIED');
  await refused(
    t,
    c.client.declineCheckpoint({
      jobId: 'job',
      epoch,
      checkpointId: pending,
      workerId: 'w0',
      declines: [{ taskId: 'src-0', message: 'x' }],
    }),
    'PERMISSION_DENIED',
  );
  await refused(t, ack(pending, [snap('src-0', 'x'.repeat(5000))]), 'OVERSIZED', grpc.status.RESOURCE_EXHAUSTED);
  await refused(t, ack(pending, []), 'MALFORMED', grpc.status.INVALID_ARGUMENT);
  await refused(t, ack(pending, [snap('src-0'), snap('src-0')]), 'MALFORMED');
  await refused(t, ack(pending, [{ ...snap('src-0'), positions: [{ input: '', offset: 1 }] }]), 'MALFORMED');
  await refused(
    t,
    c.client.declineCheckpoint({
      jobId: 'job',
      epoch: epoch + 5,
      checkpointId: pending,
      workerId: 'w0',
      declines: [{ taskId: 'src-0', message: 'x' }],
      sessionToken,
    }),
    'STALE_EPOCH',
  );

  const huge = Array.from({ length: 3000 }, (_, i) => snap('src-0', `file:///${i}/${'y'.repeat(500)}`));
  const tooBig = await t.throwsAsync(ack(pending, huge));
  t.is((tooBig as grpc.ServiceError).code, grpc.status.RESOURCE_EXHAUSTED);

  const raw = new grpc.Client(c.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
    raw.makeUnaryRequest(
      '/ckpt.v1.Coordinator/AcknowledgeCheckpoint',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      (err) => resolve(err),
    );
  });
  t.is(errorInfo(garbage)?.reason, 'MALFORMED');
  t.is(garbage?.code, grpc.status.INVALID_ARGUMENT);

  t.deepEqual(await c.dump(), before);
  const state = await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending });
  t.is(state.checkpoint?.acknowledgedTasks, 0, 'nothing of a refused call was recorded');
  t.is(state.checkpoint?.state, 'CHECKPOINT_STATE_PENDING');

  // A repeated acknowledgement is idempotent; a different one conflicts.
  t.is((await ack(pending, [snap('src-0')])).duplicates, 0);
  t.is((await ack(pending, [snap('src-0')])).duplicates, 1);
  await refused(t, ack(pending, [snap('src-0', 'file:///elsewhere')]), 'CONFLICTING_ACK');
  t.is((await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint?.acknowledgedTasks, 1);
  t.deepEqual(await c.dump(), before);
});

test('bad jobs, triggers and queries are refused with their reason and change nothing', async (t) => {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec: fanInSpec('job', 2, 1) });
  const before = await c.dump();
  await refused(
    t,
    c.client.submitJob({
      spec: {
        jobId: 'loop',
        tasks: [
          { taskId: 'a', inputs: ['b'] },
          { taskId: 'b', inputs: ['a'] },
        ],
      },
    }),
    'MALFORMED',
    grpc.status.INVALID_ARGUMENT,
  );
  await refused(t, c.client.submitJob({ spec: { jobId: 'has space', tasks: [{ taskId: 'a' }] } }), 'MALFORMED');
  await refused(t, c.client.submitJob({}), 'MALFORMED');
  await refused(t, c.client.submitJob({ spec: fanInSpec('job', 3, 1) }), 'JOB_EXISTS', grpc.status.ALREADY_EXISTS);
  t.false((await c.client.submitJob({ spec: fanInSpec('job', 2, 1) })).created, 'the same spec again is a no-op');
  await refused(t, c.client.getJob({ jobId: 'nope' }), 'UNKNOWN_JOB', grpc.status.NOT_FOUND);
  await refused(t, c.client.triggerCheckpoint({ jobId: 'nope' }), 'UNKNOWN_JOB');
  await refused(t, c.client.triggerCheckpoint({ jobId: 'job' }), 'TASKS_NOT_READY', grpc.status.FAILED_PRECONDITION);
  await refused(
    t,
    c.client.triggerCheckpoint({ jobId: 'job', snapshotType: 7 as unknown as 'SNAPSHOT_TYPE_FULL' }),
    'MALFORMED',
  );
  await refused(t, c.query.getCheckpoint({ jobId: 'job', checkpointId: 42 }), 'UNKNOWN_CHECKPOINT');
  await refused(t, c.query.listCheckpoints({ jobId: 'job', pageToken: 'abc' }), 'MALFORMED');
  await refused(t, c.query.listJobs({ pageToken: '../etc' }), 'MALFORMED');
  t.deepEqual(await c.dump(), before);
});

test('a bad session is refused: unknown task, a task attached elsewhere, no hello first', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 2, 1);
  await c.client.submitJob({ spec });
  await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0'], spec });
  const session = (first: Record<string, unknown>) =>
    new Promise<grpc.ServiceError>((resolve, reject) => {
      const call = c.client.attach();
      call.on('data', (m: AttachResponse__Output) => reject(new Error(`unexpected ${m.body ?? ''}`)));
      call.on('error', (err: grpc.ServiceError) => resolve(err));
      call.write(first);
    });
  t.is(
    errorInfo(await session({ hello: { workerId: 'w1', jobId: 'job', taskIds: ['ghost'] } }))?.reason,
    'UNKNOWN_TASK',
  );
  t.is(
    errorInfo(await session({ hello: { workerId: 'w1', jobId: 'job', taskIds: ['sink-0', 'src-0'] } }))?.reason,
    'TASK_ALREADY_ATTACHED',
  );
  t.is(errorInfo(await session({ hello: { workerId: 'w1', jobId: 'nope', taskIds: ['a'] } }))?.reason, 'UNKNOWN_JOB');
  t.is(errorInfo(await session({ heartbeat: { sentAtMs: 1 } }))?.reason, 'MALFORMED');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 1, 'only w0 is attached');
});

test('callers without the bearer token are refused', async (t) => {
  const c = await startTestCoordinator(t, servers, { authToken: 's3cret' });
  const before = await c.dump();
  const anonymous = createCoordinatorClient(c.address);
  const wrong = createCoordinatorClient(c.address, { token: 'guess' });
  t.teardown(() => {
    anonymous.close();
    wrong.close();
  });
  await refused(
    t,
    anonymous.submitJob({ spec: fanInSpec('job', 1, 1) }),
    'UNAUTHENTICATED',
    grpc.status.UNAUTHENTICATED,
  );
  await refused(t, wrong.submitJob({ spec: fanInSpec('job', 1, 1) }), 'UNAUTHENTICATED');
  await refused(t, wrong.getJob({ jobId: 'job' }), 'UNAUTHENTICATED');
  t.deepEqual(await c.dump(), before);
  t.true((await c.client.submitJob({ spec: fanInSpec('job', 1, 1) })).created, 'the right token is accepted');
});

test('the health service and server reflection answer generic gRPC tools', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const raw = new grpc.Client(c.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const health = await healthCheck(raw, 'ckpt.v1.Coordinator');
  t.deepEqual([...health], [0x08, 0x01], 'status SERVING');
  const listed = await reflectionList(raw);
  t.true(listed.includes('ckpt.v1.Coordinator'));
  t.true(listed.includes('ckpt.v1.CheckpointQuery'));
});

test('acknowledgements in a session: refusals are answered with their reason, keep the session and change nothing', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 60_000, tolerableFailures: -1, maxConcurrent: 4 });
  await c.client.submitJob({ spec });
  const call = c.client.attach();
  t.teardown(() => call.cancel());
  call.on('error', () => {});
  const requests = new SessionRequests();
  const welcomed = new Promise<AttachResponse__Output>((resolve) => {
    call.on('data', (m: AttachResponse__Output) => {
      if (m.result) requests.onResult(m.result);
      else if (m.welcome) resolve(m);
      else if (m.restore) call.write({ ready: { epoch: m.restore.epoch, taskIds: ['src-0', 'sink-0'] } });
    });
  });
  call.write({ hello: { workerId: 'w0', jobId: 'job', taskIds: ['src-0', 'sink-0'] } });
  const epoch = (await welcomed).welcome?.epoch ?? 0;
  await c.started('job');
  const send = (body: SessionRequestBody) => requests.send((r) => call.write(r), body, 10_000);
  const ack = (checkpointId: number, snapshots: TaskSnapshot[], at = epoch) =>
    send({ acknowledge: { epoch: at, checkpointId, snapshots } });
  const refusedIn = async (p: Promise<unknown>, reason: ErrorReason): Promise<void> => {
    const err = await t.throwsAsync(p);
    t.is((err as CkptError).reason, reason, err?.message);
  };
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const before = await c.dump();

  await refusedIn(ack(pending, [snap('ghost')]), 'UNKNOWN_TASK');
  await refusedIn(ack(pending, [snap('src-0')], epoch + 1), 'STALE_EPOCH');
  await refusedIn(ack(999_999, [snap('src-0')]), 'UNKNOWN_CHECKPOINT');
  await refusedIn(ack(pending, []), 'MALFORMED');
  await refusedIn(ack(pending, [snap('src-0'), snap('src-0')]), 'MALFORMED');
  await refusedIn(send({ decline: { epoch: epoch + 1, checkpointId: pending, declines: [] } }), 'MALFORMED');
  await refusedIn(
    send({ decline: { epoch: epoch + 1, checkpointId: pending, declines: [{ taskId: 'src-0', message: 'x' }] } }),
    'STALE_EPOCH',
  );
  t.is(requests.size, 0, 'every request was answered');
  t.deepEqual(await c.dump(), before);
  t.is((await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint?.acknowledgedTasks, 0);
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 2, 'the session is still attached');

  // The same session then acknowledges for real: repeats are no-ops, a different one conflicts.
  t.like(await ack(pending, [snap('src-0')]), { acknowledgedTasks: 1, totalTasks: 2, duplicates: 0 });
  t.like(await ack(pending, [snap('src-0')]), { acknowledgedTasks: 1, duplicates: 1 });
  await refusedIn(ack(pending, [snap('src-0', 'file:///elsewhere')]), 'CONFLICTING_ACK');
  t.like(await ack(pending, [snap('sink-0')]), { acknowledgedTasks: 2, totalTasks: 2 });
  await c.running.coordinator.settled();
  t.is(
    (await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint?.state,
    'CHECKPOINT_STATE_COMPLETED',
  );

  // A decline in the session aborts the checkpoint it names.
  const declined = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  t.like(
    await send({ decline: { epoch, checkpointId: declined, declines: [{ taskId: 'sink-0', message: 'disk full' }] } }),
    {
      acknowledgedTasks: 0,
    },
  );
  const summary = (await c.query.getCheckpoint({ jobId: 'job', checkpointId: declined })).checkpoint;
  t.like(summary, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_DECLINED' });

  // Waiting requests fail, retryably, when the session ends.
  const third = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const unanswered = requests.send(
    () => undefined,
    { acknowledge: { epoch, checkpointId: third, snapshots: [snap('src-0')] } },
    10_000,
  );
  requests.failAll('test');
  t.like(await t.throwsAsync(unanswered), { reason: 'UNAVAILABLE', retryable: true });
});

test('a standby waits without an answer, heartbeats, is refused for another message before its welcome, and ends with its job', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('job');
  const standby = (workerId: string) => {
    const call = c.client.attach();
    const got: AttachResponse__Output[] = [];
    const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
      call.on('error', (err: grpc.ServiceError) => resolve(err));
      call.on('end', () => resolve(undefined));
    });
    call.on('data', (m: AttachResponse__Output) => got.push(m));
    call.write({ hello: { workerId, jobId: 'job', taskIds: ['src-0', 'sink-0'], standby: true } });
    t.teardown(() => call.cancel());
    return { call, got, ended };
  };
  const isWaiting = async (n: number): Promise<boolean> =>
    (await c.client.getJob({ jobId: 'job' })).job?.attachedTasks === 2 &&
    c.running.coordinator.waitingStandbys('job') === n;

  const early = standby('s1');
  await eventually(() => isWaiting(1), { what: 'the standby waiting' });
  t.deepEqual(early.got, [], 'no welcome while w0 runs the tasks');
  early.call.write({ heartbeat: { sentAtMs: 1 } });
  await eventually(() => isWaiting(1), { what: 'the standby still waiting after a heartbeat' });
  early.call.write({ ready: { epoch: 1, taskIds: ['src-0'] } });
  t.is(errorInfo(await early.ended)?.reason, 'MALFORMED');
  await eventually(() => isWaiting(0), { what: 'the refused standby withdrawn' });

  const gone = standby('s2');
  await eventually(() => isWaiting(1), { what: 'a second standby waiting' });
  gone.call.cancel();
  await eventually(() => isWaiting(0), { what: 'the canceled standby withdrawn' });

  const last = standby('s3');
  await eventually(() => isWaiting(1), { what: 'a third standby waiting' });
  await c.client.cancelJob({ jobId: 'job' });
  t.is(errorInfo(await last.ended)?.reason, 'JOB_CANCELED');
  t.deepEqual(last.got, []);
});
