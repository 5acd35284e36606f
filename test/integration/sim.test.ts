/**
 * The simulated worker against the real coordinator on real etcd and NATS:
 * sessions, triggers and barriers through a task graph, acknowledgement
 * batching and splitting, behaviours, broadcasts, recovery, the ways a
 * session ends, and a job shared with a worker of the SDK.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import {
  controlMessageCodecs,
  edgeOfSubject,
  edgeSubject,
  epochHeaders,
  epochOf,
  isBarrier,
} from '../../src/bus/index.js';
import { errorInfo, errorReason, toCkptError } from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, createWorker, type Task } from '../../src/sdk/index.js';
import { simulatedSnapshot, startSimulatedWorker, type CallEvent, type SimulatedWorker } from '../sim/index.js';
import { MAX_ACK_SNAPSHOTS_PER_MESSAGE } from '../../src/worker-protocol/index.js';
import { natsConnection } from '../helpers/clients.js';
import { sourcesSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually, within } from '../helpers/wait.js';

const servers = useServers();

/** a, b → m; a → n; m, n → sink */
const diamond: JobSpec = {
  jobId: 'job',
  tasks: [
    { taskId: 'a', inputs: [] },
    { taskId: 'b', inputs: [] },
    { taskId: 'm', inputs: ['a', 'b'] },
    { taskId: 'n', inputs: ['a'] },
    { taskId: 'sink', inputs: ['m', 'n'] },
  ],
};

const ALL_TASKS = ['a', 'b', 'm', 'n', 'sink'];

/** The edges of `diamond` as `from.to`, sorted. */
const DIAMOND_EDGES = ['a.m', 'a.n', 'b.m', 'm.sink', 'n.sink'];

/** Every successful AcknowledgeCheckpoint call of `w` from now on, in order. */
function ackCalls(w: SimulatedWorker): CallEvent[] {
  const calls: CallEvent[] = [];
  w.events.on('acked', (call) => calls.push(call));
  return calls;
}

/** Task ids `w` acknowledged successfully for `checkpointId`, sorted. */
function ackedTasks(w: SimulatedWorker, checkpointId: number): string[] {
  return (w.acked.get(checkpointId) ?? []).map((s) => s.taskId).sort();
}

/** Triggers a checkpoint of `job` and returns its summary once it has finished. */
async function checkpoint(c: TestCoordinator, deadlineMs = 10_000): Promise<CheckpointSummary__Output> {
  await c.started('job');
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs });
  if (res.checkpoint === null) throw new Error('TriggerCheckpoint returned no summary');
  return res.checkpoint;
}

/** Records the messages published on `subject` from now on. */
async function capture(nc: NatsConnection, subject: string): Promise<Msg[]> {
  const seen: Msg[] = [];
  nc.subscribe(subject, { callback: (_err, m) => void seen.push(m) });
  await nc.flush();
  return seen;
}

test('a trigger flows through the graph: every task snapshots once and each worker acks in one call', async (t) => {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec: diamond });
  const nc = await natsConnection(t, servers.natsUrl);
  const barriers = await capture(nc, `${c.prefix.nats}.job.data.>`);
  const triggers = await capture(nc, `${c.prefix.nats}.job.trigger`);
  // A long batch window: w1's batch is sent when all three of its tasks are in, not when the window closes.
  const w1 = await c.worker({
    jobId: 'job',
    spec: diamond,
    workerId: 'w1',
    taskIds: ['a', 'b', 'm'],
    ackBatchMs: 5000,
  });
  const w2 = await c.worker({ jobId: 'job', spec: diamond, workerId: 'w2', taskIds: ['n', 'sink'] });
  for (const w of [w1, w2]) t.like(w.welcome, { epoch: 1, controlSubjectPrefix: `${c.prefix.nats}.job` });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 5);
  const calls1 = ackCalls(w1);
  const calls2 = ackCalls(w2);

  const summary = await checkpoint(c);
  t.like(summary, { state: 'CHECKPOINT_STATE_COMPLETED', epoch: 1, acknowledgedTasks: 5, totalTasks: 5 });
  t.true(summary.finishedAtMs - summary.triggeredAtMs < 5000, 'w1 did not wait for its batch window');
  const id = summary.checkpointId;
  // A worker records an acknowledgement when its call returns, which may be after the commit.
  await eventually(() => ackedTasks(w1, id).length + ackedTasks(w2, id).length === 5, { what: 'five acks' });
  t.deepEqual(ackedTasks(w1, id), ['a', 'b', 'm']);
  t.deepEqual(ackedTasks(w2, id), ['n', 'sink']);
  // sink waits for m (w1) and n (w2), so w2 may ack n and sink separately; w1 has all its tasks at once.
  t.deepEqual(
    calls1.map((call) => [call.checkpointId, [...call.taskIds].sort()]),
    [[id, ['a', 'b', 'm']]],
  );
  for (const call of [...calls1, ...calls2]) t.is(call.epoch, 1);

  t.deepEqual(
    w1.acked.get(id)?.find((s) => s.taskId === 'a'),
    simulatedSnapshot({ jobId: 'job', taskId: 'a', checkpointId: id, stateBytes: 1024, source: true, alignmentMs: 0 }),
  );
  const acked = new Map([...(w1.acked.get(id) ?? []), ...(w2.acked.get(id) ?? [])].map((s) => [s.taskId, s]));
  const { manifest } = await c.query.getCheckpoint({ jobId: 'job', checkpointId: id });
  t.deepEqual(manifest?.tasks.map((s) => s.taskId).sort(), ALL_TASKS);
  for (const task of manifest?.tasks ?? []) t.deepEqual(task, acked.get(task.taskId), task.taskId);

  await eventually(() => triggers.length > 0, { what: 'the trigger' });
  t.is(triggers.length, 1);
  t.like(controlMessageCodecs().trigger.decode(triggers[0]!.data), { jobId: 'job', checkpointId: id, epoch: 1 });
  await eventually(() => barriers.length === DIAMOND_EDGES.length, { what: 'one barrier per edge' });
  const cp = `${c.prefix.nats}.job`;
  for (const m of barriers) {
    t.true(isBarrier(m.headers));
    t.is(epochOf(m.headers), 1);
    const barrier = controlMessageCodecs().barrier.decode(m.data);
    t.is(edgeOfSubject(cp, m.subject)?.from, barrier.fromTaskId, m.subject);
    t.like(barrier, { jobId: 'job', checkpointId: id, epoch: 1, snapshotType: 'SNAPSHOT_TYPE_FULL' });
  }
  const edges = barriers.map((m) => edgeOfSubject(cp, m.subject)).map((e) => `${e?.from}.${e?.to}`);
  t.deepEqual(edges.sort(), DIAMOND_EDGES, 'each task sends its barrier to each downstream task, sinks to none');
});

test('behaviours decline, stay silent, or acknowledge a snapshot from a hook', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec: JobSpec = { ...diamond, policy: { tolerableFailures: -1, timeoutMs: 1000 } };
  await c.client.submitJob({ spec });
  const w = await c.worker({
    jobId: 'job',
    spec,
    workerId: 'w',
    taskIds: ALL_TASKS,
    behaviour: {
      b: 'decline',
      n: 'silent',
      m: ({ snapshot }) => Promise.resolve({ ...snapshot, state: { ...snapshot.state!, uri: 'sim://custom/m' } }),
    },
  });

  // The decline of source b goes out first and aborts the checkpoint before any acknowledgement counts.
  const declined = await checkpoint(c);
  t.like(declined, {
    state: 'CHECKPOINT_STATE_ABORTED',
    abortReason: 'ABORT_REASON_DECLINED',
    abortMessage: 'b: simulated decline',
    acknowledgedTasks: 0,
  });
  await eventually(() => w.declined.has(declined.checkpointId));
  t.deepEqual(w.declined.get(declined.checkpointId), ['b']);

  // n stays silent: the others acknowledge and the checkpoint times out waiting for n.
  w.setBehaviour('b', 'ack');
  const silent = await checkpoint(c);
  t.like(silent, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_TIMEOUT', acknowledgedTasks: 4 });
  await eventually(() => ackedTasks(w, silent.checkpointId).length === 4);
  t.deepEqual(ackedTasks(w, silent.checkpointId), ['a', 'b', 'm', 'sink']);
  t.is(w.acked.get(silent.checkpointId)?.find((s) => s.taskId === 'm')?.state?.uri, 'sim://custom/m');

  w.setBehaviour('n', 'ack');
  const done = await checkpoint(c);
  t.like(done, { state: 'CHECKPOINT_STATE_COMPLETED', acknowledgedTasks: 5 });
  const { manifest } = await c.query.getCheckpoint({ jobId: 'job', checkpointId: done.checkpointId });
  t.is(manifest?.tasks.find((s) => s.taskId === 'm')?.state?.uri, 'sim://custom/m', 'the hook snapshot is committed');
  t.is(manifest?.tasks.find((s) => s.taskId === 'a')?.state?.uri, `sim://job/a/${done.checkpointId}`);
});

test('complete and abort broadcasts are recorded and settle waitForComplete', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 2, { tolerableFailures: -1, timeoutMs: 1000 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', spec, workerId: 'w', taskIds: ['t00000', 't00001'] });

  const first = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const complete = await w.waitForComplete(first, { timeoutMs: 5000 });
  const summary = (await c.query.getCheckpoint({ jobId: 'job', checkpointId: first })).checkpoint;
  t.like(complete, { jobId: 'job', checkpointId: first, epoch: 1, completedAtMs: summary?.finishedAtMs });
  t.is(w.completed.get(first), complete);
  t.is(await w.waitForComplete(first), complete, 'an earlier complete resolves at once');

  w.setBehaviour('t00001', 'silent');
  const second = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  t.true(second > first);
  await t.throwsAsync(w.waitForComplete(second, { timeoutMs: 5000 }), { message: /^CHECKPOINT_ABORTED/ });
  t.like(w.aborted.get(second), { checkpointId: second, reason: 'ABORT_REASON_TIMEOUT' });
  await t.throwsAsync(
    w.waitForComplete(second),
    { message: /^CHECKPOINT_ABORTED/ },
    'an earlier abort rejects at once',
  );
  await t.throwsAsync(w.waitForComplete(second + 1, { timeoutMs: 50 }), { message: /no complete event/ });
});

test('a recovery moves the worker to the new epoch and messages of the old epoch are dropped', async (t) => {
  const c = await startTestCoordinator(t, servers);
  // The default policy tolerates no failure: the first declined checkpoint starts a recovery.
  await c.client.submitJob({ spec: diamond });
  const nc = await natsConnection(t, servers.natsUrl);
  const triggers = await capture(nc, `${c.prefix.nats}.job.trigger`);
  const recovers = await capture(nc, `${c.prefix.nats}.job.recover`);
  const w1 = await c.worker({ jobId: 'job', spec: diamond, workerId: 'w1', taskIds: ['a', 'b', 'm'] });
  const w2 = await c.worker({ jobId: 'job', spec: diamond, workerId: 'w2', taskIds: ['n', 'sink'] });
  const committed = (await checkpoint(c)).checkpointId;

  w2.setBehaviour('sink', 'decline');
  const failed = await checkpoint(c);
  t.like(failed, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_DECLINED', epoch: 1 });
  // The session's restore moves a worker; the recover broadcast, advisory, is recorded whenever it comes.
  await eventually(() => w1.epoch === 2 && w2.epoch === 2, { what: 'both workers in epoch 2' });
  t.deepEqual(
    [w1, w2].map((w) => w.restored.at(-1)?.epoch),
    [2, 2],
  );
  await eventually(() => w1.recovered.length > 0 && w2.recovered.length > 0, { what: 'the recover broadcast' });
  const term = c.running.term?.term;
  for (const w of [w1, w2]) t.deepEqual(w.recovered, [{ jobId: 'job', epoch: 2, checkpointId: committed, term }]);
  t.is((await c.client.getJob({ jobId: 'job' })).job?.epoch, 2);
  t.is((await c.dump())[`${c.prefix.etcd}jobs/job/epoch`], '2'.padStart(20, '0'));
  t.is(recovers.length, 1);

  // A trigger of epoch 1 delivered late (the coordinator's own message, published again) is dropped.
  const stale = triggers.find(
    (m) => controlMessageCodecs().trigger.decode(m.data).checkpointId === failed.checkpointId,
  );
  const droppedTrigger = w1.waitFor('dropped', ([d]) => d.what === 'trigger', { timeoutMs: 5000 });
  nc.publish(stale!.subject, stale!.data, { headers: stale!.headers });
  t.deepEqual(await droppedTrigger, [{ what: 'trigger', reason: 'other-epoch', epoch: 1, currentEpoch: 2 }]);
  // So is the recover delivered twice: it was recorded already (and a recover never moves a worker).
  const droppedRecover = w2.waitFor('dropped', ([d]) => d.what === 'recover', { timeoutMs: 5000 });
  nc.publish(recovers[0]!.subject, recovers[0]!.data, { headers: recovers[0]!.headers });
  t.deepEqual(await droppedRecover, [{ what: 'recover', reason: 'duplicate', epoch: 2, currentEpoch: 2 }]);
  t.is(w2.recovered.length, 1);

  w2.setBehaviour('sink', 'ack');
  const calls1 = ackCalls(w1);
  const calls2 = ackCalls(w2);
  // The recovery ends just after its broadcast; until then the job refuses triggers.
  const after = await eventually(() => checkpoint(c), { what: 'a checkpoint after the recovery' });
  t.like(after, { state: 'CHECKPOINT_STATE_COMPLETED', epoch: 2, acknowledgedTasks: 5 });
  await eventually(() => ackedTasks(w1, after.checkpointId).length + ackedTasks(w2, after.checkpointId).length === 5);
  const calls = [...calls1, ...calls2];
  t.true(calls.length > 0);
  t.true(calls.every((call) => call.epoch === 2 && call.checkpointId === after.checkpointId));
});

test('the session carries the token and heartbeats; close ends it cleanly, kill drops it', async (t) => {
  const c = await startTestCoordinator(t, servers, {
    authToken: 'sekret',
    heartbeatIntervalMs: 50,
    // Long enough that a loaded machine, where this process may stall for a
    // few hundred milliseconds, does not end a session whose heartbeats flow.
    heartbeatTimeoutMs: 1000,
  });
  const spec = sourcesSpec('job', 3, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const refused = (token?: string) =>
    startSimulatedWorker({
      coordinator: c.address,
      nats: [servers.natsUrl],
      subjectPrefix: c.prefix.nats,
      logger: silentLogger(),
      jobId: 'job',
      spec,
      workerId: 'intruder',
      taskIds: ['t00000'],
      ...(token === undefined ? {} : { token }),
    });
  t.like(errorInfo(await t.throwsAsync(refused())), {
    reason: 'UNAUTHENTICATED',
    message: 'UNAUTHENTICATED: the call carries no authorization metadata',
  });
  t.like(errorInfo(await t.throwsAsync(refused('guess'))), {
    reason: 'UNAUTHENTICATED',
    message: 'UNAUTHENTICATED: the bearer token is not valid',
  });

  // c.worker passes the coordinator's token.
  const w1 = await c.worker({ jobId: 'job', spec, workerId: 'w1', taskIds: ['t00000'] });
  const w2 = await c.worker({ jobId: 'job', spec, workerId: 'w2', taskIds: ['t00001'] });
  const w3 = await c.worker({ jobId: 'job', spec, workerId: 'w3', taskIds: ['t00002'] });
  const live = [w1, w2, w3];
  t.is(w1.welcome?.heartbeatIntervalMs, 50);
  const ended: unknown[] = [];
  for (const w of [w1, w2]) w.events.on('session-ended', (e) => ended.push(e));
  // The point of the test: every worker has sent heartbeats over two and a
  // half heartbeat timeouts, and every session is still open, because the
  // heartbeats arrive.
  const spanned = (w: SimulatedWorker) =>
    new Promise<void>((resolve) => {
      let first: number | undefined;
      const beat = ({ sentAtMs }: { sentAtMs: number }): void => {
        first ??= sentAtMs;
        if (sentAtMs - first < 2500) return;
        w.events.off('heartbeat', beat);
        resolve();
      };
      w.events.on('heartbeat', beat);
    });
  await within(Promise.all(live.map(spanned)), 'heartbeats over 2500 ms from every worker');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 3);
  t.is((await checkpoint(c)).state, 'CHECKPOINT_STATE_COMPLETED', 'acknowledgements carry the token');

  /** Leaves a checkpoint pending on `w`'s silent task, runs `leave`, and returns how the checkpoint ended. */
  const pendingWhile = async (w: SimulatedWorker, taskId: string, leave: () => unknown) => {
    w.setBehaviour(taskId, 'silent');
    const others = live.filter((x) => x !== w && x.state === 'running');
    const finished = checkpoint(c);
    const id = await eventually(async () => {
      const pending = (await c.query.listCheckpoints({ jobId: 'job' })).checkpoints[0];
      return pending?.state === 'CHECKPOINT_STATE_PENDING' && pending.checkpointId;
    });
    await eventually(() => others.every((x) => x.acked.has(id)), { what: 'the other workers acked' });
    await leave();
    return finished;
  };

  const closed = await pendingWhile(w1, 't00000', () => w1.close());
  t.is(w1.state, 'closed');
  t.like(closed, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_TASK_FAILURE' });
  t.is(closed.abortMessage, 'a worker left: the worker ended its session');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 2);

  live.push(await c.worker({ jobId: 'job', spec, workerId: 'w1b', taskIds: ['t00000'] }));
  const killed = await pendingWhile(w2, 't00001', () => w2.kill());
  t.is(w2.state, 'closed');
  t.like(killed, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_TASK_FAILURE' });
  // A cancelled stream may reach the server as its end first: either way the worker left.
  t.regex(killed.abortMessage, /^a worker left: the worker (cancelled|ended) its session$/);
  t.deepEqual(ended, [], 'a session the worker ends itself reports no failure');

  const timedOut = w3.waitFor('session-ended', () => true, { timeoutMs: 5000 });
  w3.setHeartbeats(false);
  const [{ error }] = await timedOut;
  t.like(errorInfo(error), { reason: 'UNAVAILABLE', message: 'UNAVAILABLE: session ended: no heartbeat for 1000 ms' });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 1);
});

test('a refused hello rejects the start with the coordinator reason', async (t) => {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec: diamond });
  await c.worker({ jobId: 'job', spec: diamond, workerId: 'w0', taskIds: ['a'] });
  const err = await t.throwsAsync(c.worker({ jobId: 'job', spec: diamond, workerId: 'w', taskIds: ['b', 'a'] }));
  t.like(errorInfo(err), {
    reason: 'TASK_ALREADY_ATTACHED',
    message: 'TASK_ALREADY_ATTACHED: task a is attached by another worker session',
    ids: { jobId: 'job', taskId: 'a' },
  });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 1, 'a refused hello attaches nothing');
  const other = { ...diamond, jobId: 'other' };
  const unknown = await t.throwsAsync(c.worker({ jobId: 'other', spec: other, workerId: 'w', taskIds: ['a'] }));
  t.is(errorReason(unknown), 'UNKNOWN_JOB');
  t.deepEqual(errorInfo(unknown)?.ids, { jobId: 'other' });
});

test('options naming tasks outside the spec are refused before connecting', async (t) => {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec: diamond });
  const options = { jobId: 'job', spec: diamond, workerId: 'w' };
  await t.throwsAsync(c.worker({ ...options, taskIds: ['nope'] }), { message: /^MALFORMED: task nope/ });
  await t.throwsAsync(c.worker({ ...options, taskIds: ['bad.id'] }), { message: /^MALFORMED/ });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 0);
});

test.serial('10,000 sources in one worker share one trigger subscription and ack in runs of 1,000', async (t) => {
  const c = await startTestCoordinator(t, servers, { heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 30_000 });
  const spec = sourcesSpec('job', 10_000, { timeoutMs: 60_000 });
  await c.client.submitJob({ spec });
  let barriers = 0;
  const nc = await natsConnection(t, servers.natsUrl);
  nc.subscribe(`${c.prefix.nats}.job.data.>`, { callback: () => void (barriers += 1) });
  await nc.flush();
  const taskIds = (spec.tasks ?? []).map((x) => x.taskId as string);
  const w = await c.worker({ jobId: 'job', spec, workerId: 'big', taskIds });
  const calls = ackCalls(w);
  const summary = await checkpoint(c, 30_000);
  t.like(summary, { state: 'CHECKPOINT_STATE_COMPLETED', acknowledgedTasks: 10_000 });
  await eventually(() => calls.length > 0);
  // The coordinator takes each message in one turn of its event loop: the worker sends at most 1,000 snapshots in one.
  t.deepEqual(
    calls.map((call) => call.taskIds.length),
    Array.from({ length: 10_000 / MAX_ACK_SNAPSHOTS_PER_MESSAGE }, () => MAX_ACK_SNAPSHOTS_PER_MESSAGE),
  );
  t.is(new Set(calls.flatMap((call) => call.taskIds)).size, 10_000);
  // Sources without downstream tasks have no edge to send a barrier on.
  await w.nats.flush();
  await nc.flush();
  t.is(barriers, 0);
  const connz = (await (await fetch(`${servers.nats.monitorUrl}/connz?subs=1`)).json()) as {
    connections: { name?: string; subscriptions_list?: string[] }[];
  };
  const mine = connz.connections.find((x) => x.name === 'ckpt-sim-big');
  t.deepEqual(mine?.subscriptions_list?.sort(), [
    `${c.prefix.nats}.job.abort`,
    `${c.prefix.nats}.job.complete`,
    `${c.prefix.nats}.job.recover`,
    `${c.prefix.nats}.job.trigger`,
  ]);
});

test('acknowledgements above the size limit are split into several calls', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 50);
  await c.client.submitJob({ spec });
  const taskIds = (spec.tasks ?? []).map((x) => x.taskId as string);
  const w = await c.worker({ jobId: 'job', spec, workerId: 'w', taskIds, maxAckRequestBytes: 2000 });
  const calls = ackCalls(w);
  const summary = await checkpoint(c);
  t.like(summary, { state: 'CHECKPOINT_STATE_COMPLETED', acknowledgedTasks: 50 });
  await eventually(() => calls.reduce((n, call) => n + call.taskIds.length, 0) === 50);
  t.true(calls.length > 1, String(calls.length));
  t.deepEqual(calls.flatMap((call) => call.taskIds).sort(), taskIds);
});

test('when the coordinator goes away the worker reports it and still closes at once', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1);
  await c.client.submitJob({ spec });
  const options = { jobId: 'job', spec, workerId: 'w', taskIds: ['t00000'] };
  const closesAtOnce = async (w: SimulatedWorker): Promise<void> => {
    const started = Date.now();
    await w.close();
    t.true(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
  };

  // A graceful stop ends the session with a reason.
  const w1 = await c.worker(options);
  const stopped = w1.waitFor('session-ended', () => true, { timeoutMs: 5000 });
  await c.restart();
  const [{ error: shutdown }] = await stopped;
  t.like(errorInfo(shutdown), { code: grpc.status.UNAVAILABLE, reason: 'SHUTTING_DOWN' });
  await closesAtOnce(w1);

  // A crash leaves only the transport's word for it.
  const w2 = await c.worker(options);
  const crashed = w2.waitFor('session-ended', () => true, { timeoutMs: 5000 });
  await c.running.kill();
  const [{ error: lost }] = await crashed;
  t.is(errorReason(lost), undefined);
  t.like(toCkptError(lost), { reason: 'UNAVAILABLE', retryable: true });
  await closesAtOnce(w2);
});

test("a simulated worker and an SDK worker in one job see each other's barriers", async (t) => {
  // src and sink run simulated, fwd in the SDK: barriers cross from sim to SDK and back.
  const spec: JobSpec = {
    jobId: 'mixed',
    tasks: [
      { taskId: 'src', inputs: [] },
      { taskId: 'fwd', inputs: ['src'] },
      { taskId: 'sink', inputs: ['fwd'] },
    ],
  };
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec });
  const nc = await natsConnection(t, servers.natsUrl);
  const cp = `${c.prefix.nats}.mixed`;
  const traffic = await capture(nc, `${cp}.data.>`);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-sim-sdk-'));
  const state = await createLocalDirectoryBackend({ dir });
  const forward: Task = { process: (record, ctx) => ctx.emit(record.value) };
  const sdk = createWorker({ coordinator: c.address, nats: [servers.natsUrl], jobId: 'mixed', workerId: 'sdk', state });
  sdk.addTask('fwd', forward);
  t.teardown(async () => {
    await sdk.stop();
    await state.close();
    await rm(dir, { recursive: true, force: true });
  });
  await sdk.start();
  const sim = await c.worker({ jobId: 'mixed', spec, workerId: 'sim', taskIds: ['src', 'sink'] });
  await c.started('mixed');

  const res = await c.client.triggerCheckpoint({ jobId: 'mixed', wait: true }, { deadlineMs: 10_000 });
  t.like(res.checkpoint, { state: 'CHECKPOINT_STATE_COMPLETED', acknowledgedTasks: 3, totalTasks: 3 });
  const id = res.checkpoint?.checkpointId ?? 0;
  await eventually(() => ackedTasks(sim, id).length === 2, { what: 'the acks of src and sink' });
  t.deepEqual(ackedTasks(sim, id), ['sink', 'src'], 'sink aligned on the barrier the SDK forwarded');
  const barrierEdges = traffic.filter((m) => isBarrier(m.headers)).map((m) => m.subject);
  t.deepEqual(barrierEdges, [edgeSubject(cp, 'src', 'fwd'), edgeSubject(cp, 'fwd', 'sink')]);
  const { manifest } = await c.query.getCheckpoint({ jobId: 'mixed', checkpointId: id });
  t.deepEqual(manifest?.tasks.map((s) => s.taskId).sort(), ['fwd', 'sink', 'src']);

  // A record on src's edge (after its barrier, which counted none before it) is forwarded to sink.
  nc.publish(edgeSubject(cp, 'src', 'fwd'), new TextEncoder().encode('hello'), { headers: epochHeaders(1) });
  await eventually(() => traffic.some((m) => m.subject === edgeSubject(cp, 'fwd', 'sink') && !isBarrier(m.headers)), {
    what: 'the record forwarded by fwd',
  });
});
