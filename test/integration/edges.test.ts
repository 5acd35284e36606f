/**
 * Invariants 7 and 8 at the edges: the requests that once ended the
 * coordinator process or stalled it, and values it once accepted, are
 * refused with a clear reason, change nothing, and leave the coordinator
 * serving.
 */
import * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { errorInfo } from '../../src/client/index.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { TaskSnapshot } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import { eventually, useServers } from '../helpers/index.js';
import { healthCheck, rawSession, reflectionList, refused } from '../helpers/refusals.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();
const UINT64_MAX = '18446744073709551615';
const CHECKSUM = `sha256:${'0f'.repeat(32)}`;

/** The coordinator answers, and the job runs: it was not ended or stalled. */
async function stillServing(t: ExecutionContext, c: TestCoordinator): Promise<void> {
  const done = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
}

async function runningJob(t: ExecutionContext, overrides = {}) {
  const c = await startTestCoordinator(t, servers, { authToken: 'tok', ...overrides });
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 30_000 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('job');
  return { c, w, token: w.welcome?.sessionToken ?? '' };
}

test('ids that are not printable ASCII are refused with a reason and never reach metadata', async (t) => {
  const { c, token } = await runningJob(t);
  const before = await c.dump();
  const malformed = await refused(
    t,
    c.client.declineCheckpoint({ jobId: 'é', epoch: 1, checkpointId: 1, declines: [] }),
    'MALFORMED',
  );
  t.is(malformed.code, grpc.status.INVALID_ARGUMENT);
  t.regex(malformed.details, /job_id "é" must be 1-128 characters/);
  await refused(
    t,
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: 1,
      checkpointId: 1,
      workerId: 'w0',
      sessionToken: token,
      snapshots: [{ taskId: '\n' }],
    }),
    'MALFORMED',
  );
  await refused(t, c.client.getJob({ jobId: '\u0000\ud800' }), 'MALFORMED');
  for (const standby of [false, true]) {
    const s = rawSession(c.client, [{ hello: { workerId: 'w9', jobId: 'job', taskIds: ['é'], standby } }]);
    t.is(errorInfo(await s.ended)?.reason, 'MALFORMED');
  }
  const badWorker = rawSession(c.client, [{ hello: { workerId: 'w 9\n', jobId: 'job', taskIds: ['src-0'] } }]);
  t.is(errorInfo(await badWorker.ended)?.reason, 'MALFORMED');
  t.deepEqual(await c.dump(), before);
  await stillServing(t, c);
});

test('a heartbeat or a task failure naming a task that is not printable ASCII ends only that session', async (t) => {
  const c = await startTestCoordinator(t, servers, { authToken: 'tok' });
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 30_000 });
  await c.client.submitJob({ spec });
  for (const bad of [
    { heartbeat: { sentAtMs: 1, tasks: [{ taskId: 'é' }] } },
    { heartbeat: { sentAtMs: 1, tasks: [{ taskId: 'src-0', busyMs: UINT64_MAX }] } },
    { failure: { taskId: 'é', epoch: 1, message: 'x' } },
    { failure: { taskId: 'src-0', epoch: 1, message: 'x'.repeat(5000) } },
    { ready: { epoch: UINT64_MAX, taskIds: ['src-0'] } },
  ] satisfies AttachRequest[]) {
    const s = rawSession(c.client, [{ hello: { workerId: 'w1', jobId: 'job', taskIds: ['src-0', 'sink-0'] } }, bad]);
    const err = await s.ended;
    t.true(['MALFORMED', 'OVERSIZED'].includes(errorInfo(err)?.reason ?? ''), err?.message);
    t.true(
      s.got.some((m) => m.welcome),
      'the session had been welcomed',
    );
    await eventually(async () => (await c.client.getJob({ jobId: 'job' })).job?.attachedTasks === 0, {
      what: 'the ended session detached',
    });
  }
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec });
  t.truthy(w.welcome);
  await c.started('job');
  await stillServing(t, c);
});

test('acknowledgements with empty, foreign or unbounded state handles are refused and never committed', async (t) => {
  const { c, token } = await runningJob(t, { stateUriSchemes: 'file,nats-obj,sim' });
  // The simulated worker acknowledges by itself: let it commit one, then acknowledge the next id.
  const done = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const pending = done.checkpoint?.checkpointId ?? 0;
  const before = await c.dump();
  const ack = (snapshot: TaskSnapshot) =>
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: 1,
      checkpointId: pending + 1,
      workerId: 'w0',
      sessionToken: token,
      snapshots: [snapshot],
    });
  const state = (uri: string, checksum = CHECKSUM, sizeBytes: number | string = 10) => ({
    taskId: 'src-0',
    state: { uri, checksum, sizeBytes },
    metrics: { stateSizeBytes: 10 },
  });
  await refused(t, ack(state('', 'md5:0', UINT64_MAX)), 'MALFORMED');
  await refused(t, ack(state('file:///x', 'md5:0')), 'MALFORMED');
  await refused(t, ack(state('file:///x', CHECKSUM.toUpperCase())), 'MALFORMED');
  await refused(t, ack(state('file:///x', CHECKSUM, UINT64_MAX)), 'MALFORMED');
  await refused(t, ack(state('file:///x', CHECKSUM, 2 ** 53)), 'MALFORMED');
  await refused(t, ack(state('javascript:alert(1)')), 'MALFORMED');
  await refused(t, ack(state('file:///with space')), 'MALFORMED');
  await refused(t, ack(state('file:///é')), 'MALFORMED');
  await refused(t, ack({ taskId: 'src-0', metrics: { stateSizeBytes: 10 } }), 'MALFORMED');
  await refused(t, ack({ taskId: 'src-0', state: { uri: '', sizeBytes: 5 } }), 'MALFORMED');
  await refused(
    t,
    ack({
      taskId: 'src-0',
      state: { uri: 'file:///x', checksum: CHECKSUM, shared: [{ uri: 'nope:/', checksum: '' }] },
    }),
    'MALFORMED',
  );
  await refused(t, ack({ taskId: 'src-0', positions: [{ input: 'in', offset: UINT64_MAX }] }), 'MALFORMED');
  await refused(t, ack({ taskId: 'src-0', metrics: { alignmentMs: UINT64_MAX } }), 'MALFORMED');
  t.deepEqual(await c.dump(), before);
  await stillServing(t, c);
});

test('a decline message past the limit is refused, and an abort from many declines stays small', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const tasks = Array.from({ length: 40 }, (_, i) => ({ taskId: `t${i}` }));
  const spec = { jobId: 'job', tasks, policy: { timeoutMs: 30_000, tolerableFailures: -1 } };
  await c.client.submitJob({ spec });
  const w = await c.worker({
    jobId: 'job',
    workerId: 'w0',
    taskIds: tasks.map((x) => x.taskId),
    spec,
    behaviour: 'silent',
  });
  await c.started('job');
  const token = w.welcome?.sessionToken ?? '';
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const decline = (message: string, count = 1) =>
    c.client.declineCheckpoint({
      jobId: 'job',
      epoch: 1,
      checkpointId: pending,
      sessionToken: token,
      declines: tasks.slice(0, count).map((x) => ({ taskId: x.taskId, message })),
    });
  const before = await c.dump();
  const err = await refused(t, decline('x'.repeat(2 * 1024 * 1024)), 'OVERSIZED');
  t.is(err.code, grpc.status.RESOURCE_EXHAUSTED);
  await refused(t, decline('é'.repeat(2049)), 'OVERSIZED');
  t.deepEqual(await c.dump(), before);
  await decline('y'.repeat(4096), 40);
  await eventually(() => w.aborted.get(pending), { what: 'the abort broadcast' });
  const summary = (await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint;
  t.is(summary?.abortReason, 'ABORT_REASON_DECLINED');
  t.true(Buffer.byteLength(summary?.abortMessage ?? '') <= 8192, `${summary?.abortMessage.length} bytes`);
  t.regex(summary?.abortMessage ?? '', /\(and \d+ more\)$/);
  t.is(w.aborted.get(pending)?.reason, 'ABORT_REASON_DECLINED', 'the abort reached the worker over NATS');
});

test('policies with durations or counts out of range are refused, never altered', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const before = await c.dump();
  const submit = (policy: Record<string, unknown>) =>
    c.client.submitJob({ spec: { jobId: 'p', tasks: [{ taskId: 'a' }], policy } });
  for (const policy of [
    { timeoutMs: '9223372036854775807' },
    { timeoutMs: UINT64_MAX },
    { intervalMs: 8 * 24 * 3600 * 1000 },
    { snapshotTimeoutMs: 2 ** 53 },
    { taskStallTimeoutMs: 1 },
    { minPauseMs: UINT64_MAX },
    { maxConcurrent: 17 },
    { retained: 101 },
    { tolerableFailures: 1_000_001 },
    { tolerableFailures: -2 },
    { fullEvery: 4_000_000_000 },
    { mode: 9 },
  ]) {
    const err = await refused(t, submit(policy), 'MALFORMED');
    t.regex(err.details, /policy\./, JSON.stringify(policy));
  }
  t.deepEqual(await c.dump(), before);
  const ok = await c.client.submitJob({
    spec: { jobId: 'p', tasks: [{ taskId: 'a' }], policy: { timeoutMs: 7 * 24 * 3600 * 1000 } },
  });
  t.is(ok.job?.spec?.policy?.timeoutMs, 7 * 24 * 3600 * 1000);
});

test('a spec of one source and 20,000 readers is validated while the other jobs go on', async (t) => {
  const { c } = await runningJob(t, { authToken: undefined });
  const readers = Array.from({ length: 20_000 }, (_, i) => ({ taskId: `r${i}`, inputs: ['src'] }));
  const submitted = c.client.submitJob({ spec: { jobId: 'wide', tasks: [{ taskId: 'src' }, ...readers] } });
  await stillServing(t, c);
  const wide = await submitted;
  t.is(wide.job?.spec?.tasks.length, 20_001);
  await stillServing(t, c);
});

test('with a token set, server reflection needs it; the health service answers probes without it', async (t) => {
  const c = await startTestCoordinator(t, servers, { authToken: 'tok' });
  const raw = new grpc.Client(c.address, grpc.credentials.createInsecure());
  t.teardown(() => raw.close());
  const err = await t.throwsAsync<grpc.ServiceError>(reflectionList(raw));
  t.is(err.code, grpc.status.UNAUTHENTICATED);
  t.is(errorInfo(err)?.reason, 'UNAUTHENTICATED');
  const authorized = new grpc.Metadata();
  authorized.set('authorization', 'Bearer tok');
  t.true((await reflectionList(raw, authorized)).includes('ckpt.v1.Coordinator'));
  const health = await healthCheck(raw, '');
  t.deepEqual([...health], [0x08, 0x01], 'the server is SERVING');
});
