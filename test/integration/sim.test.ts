import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import type { Msg } from '@nats-io/nats-core';
import { controlMessageCodecs, createNatsBus, epochOf, isBarrier, type NatsBus } from '../../src/bus/index.js';
import { errorInfo, errorReason } from '../../src/client/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import {
  simulatedSnapshot,
  startSimulatedWorker,
  type SimulatedWorker,
  type SimulatedWorkerOptions,
} from '../../src/sim/index.js';
import { natsConnection } from '../helpers/clients.js';
import { uniquePrefix, useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { startStubCoordinator, type StubCoordinator, type StubOptions } from './stub-coordinator.js';

const servers = useServers({ etcd: false });

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

interface Rig {
  prefix: string;
  stub: StubCoordinator;
  bus: NatsBus;
  worker: (
    options: Partial<SimulatedWorkerOptions> & Pick<SimulatedWorkerOptions, 'workerId' | 'taskIds'>,
  ) => Promise<SimulatedWorker>;
}

async function rig(t: ExecutionContext, stubOptions: Partial<StubOptions> = {}): Promise<Rig> {
  const prefix = uniquePrefix(t).nats;
  const stub = await startStubCoordinator({ subjectPrefix: prefix, ...stubOptions });
  t.teardown(() => stub.close());
  const bus = await createNatsBus({ servers: [servers.natsUrl], subjectPrefix: prefix, logger: silentLogger() });
  t.teardown(() => bus.close());
  const worker = async (
    options: Partial<SimulatedWorkerOptions> & Pick<SimulatedWorkerOptions, 'workerId' | 'taskIds'>,
  ) => {
    const w = await startSimulatedWorker({
      coordinator: stub.address,
      nats: [servers.natsUrl],
      subjectPrefix: prefix,
      jobId: 'job',
      spec: diamond,
      logger: silentLogger(),
      ...options,
    });
    t.teardown(() => w.kill());
    return w;
  };
  return { prefix, stub, bus, worker };
}

function tasksOf(stub: StubCoordinator, checkpointId: number): string[] {
  return stub.acks
    .filter((a) => a.checkpointId === checkpointId)
    .flatMap((a) => a.snapshots.map((s) => s.taskId))
    .sort();
}

test('a trigger flows through the graph: every task snapshots once and each worker acks in one call', async (t) => {
  const { stub, bus, worker, prefix } = await rig(t);
  const nc = await natsConnection(t, servers.natsUrl);
  const barriers: Msg[] = [];
  nc.subscribe(`${prefix}.job.data.*`, { callback: (_e, m) => void barriers.push(m) });
  await nc.flush();
  // A long batch window: w1's batch is sent when all three of its tasks are in, not when the window closes.
  const w1 = await worker({ workerId: 'w1', taskIds: ['a', 'b', 'm'], ackBatchMs: 5000 });
  const w2 = await worker({ workerId: 'w2', taskIds: ['n', 'sink'] });
  t.deepEqual(
    stub.sessions.map((s) => [s.hello.workerId, s.hello.taskIds]),
    [
      ['w1', ['a', 'b', 'm']],
      ['w2', ['n', 'sink']],
    ],
  );

  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1, snapshotType: 'SNAPSHOT_TYPE_FULL' });
  // The workers record an acknowledgement when its call returns, which is after the stub has it.
  const recorded = (): number => (w1.acked.get(1)?.length ?? 0) + (w2.acked.get(1)?.length ?? 0);
  await eventually(() => recorded() === 5, { what: 'five acknowledged tasks' });
  t.deepEqual(tasksOf(stub, 1), ['a', 'b', 'm', 'n', 'sink']);
  // sink waits for m (w1) and n (w2), so w2 may ack n and sink separately; w1 has all its tasks at once.
  t.is(stub.acks.filter((a) => a.workerId === 'w1').length, 1);
  for (const ack of stub.acks) t.is(ack.epoch, 1);

  const a = w1.acked.get(1)?.find((s) => s.taskId === 'a');
  t.deepEqual(
    a,
    simulatedSnapshot({ jobId: 'job', taskId: 'a', checkpointId: 1, stateBytes: 1024, source: true, alignmentMs: 0 }),
  );
  const all = [...(w1.acked.get(1) ?? []), ...(w2.acked.get(1) ?? [])].map((s) => s.taskId).sort();
  t.deepEqual(all, tasksOf(stub, 1));

  await eventually(() => barriers.length === 5, { what: 'one barrier per task' });
  for (const m of barriers) {
    t.true(isBarrier(m.headers));
    t.is(epochOf(m.headers), 1);
    const barrier = controlMessageCodecs().barrier.decode(m.data);
    t.is(m.subject, `${prefix}.job.data.${barrier.fromTaskId}`);
    t.like(barrier, { jobId: 'job', checkpointId: 1, epoch: 1, snapshotType: 'SNAPSHOT_TYPE_FULL' });
  }
});

test('behaviours decline, stay silent, or acknowledge a snapshot from a hook', async (t) => {
  const { stub, bus, worker } = await rig(t);
  const w = await worker({
    workerId: 'w',
    taskIds: ['a', 'b', 'm', 'n', 'sink'],
    behaviour: {
      b: 'decline',
      n: 'silent',
      m: ({ snapshot }) => Promise.resolve({ ...snapshot, state: { ...snapshot.state!, uri: 'custom://m' } }),
    },
  });
  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 });
  await eventually(() => w.declined.get(1)?.length === 1 && w.acked.get(1)?.length === 3);
  t.deepEqual(stub.declines[0]?.declines, [{ taskId: 'b', message: 'simulated decline' }]);
  t.deepEqual(tasksOf(stub, 1), ['a', 'm', 'sink']);
  t.is(w.acked.get(1)?.find((s) => s.taskId === 'm')?.state?.uri, 'custom://m');
  t.deepEqual(w.declined.get(1), ['b']);

  w.setBehaviour('b', 'ack');
  await bus.publishTrigger({ jobId: 'job', checkpointId: 2, epoch: 1 });
  await eventually(() => tasksOf(stub, 2).length === 4);
  t.deepEqual(tasksOf(stub, 2), ['a', 'b', 'm', 'sink']);
});

test('complete and abort broadcasts are recorded and settle waitForComplete', async (t) => {
  const { bus, worker } = await rig(t);
  const w = await worker({ workerId: 'w', taskIds: ['a'] });
  const done = w.waitForComplete(1, { timeoutMs: 5000 });
  await bus.publishComplete({ jobId: 'job', checkpointId: 1, epoch: 1, completedAtMs: 5 });
  t.like(await done, { checkpointId: 1, completedAtMs: 5 });
  t.is(w.completed.get(1)?.completedAtMs, 5);
  t.is((await w.waitForComplete(1)).checkpointId, 1, 'an earlier complete resolves at once');

  const aborted = w.waitForComplete(2, { timeoutMs: 5000 });
  await bus.publishAbort({ jobId: 'job', checkpointId: 2, epoch: 1, reason: 'ABORT_REASON_TIMEOUT' });
  await t.throwsAsync(aborted, { message: /^CHECKPOINT_ABORTED/ });
  t.is(w.aborted.get(2)?.reason, 'ABORT_REASON_TIMEOUT');
  await t.throwsAsync(w.waitForComplete(3, { timeoutMs: 50 }), { message: /no complete event/ });
});

test('a recover moves the worker to the new epoch and messages of other epochs are dropped', async (t) => {
  const { stub, bus, worker } = await rig(t, { epoch: 4 });
  const w = await worker({ workerId: 'w', taskIds: ['a', 'n'] });
  t.is(w.epoch, 4);
  const dropped = w.waitFor('dropped');
  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 3 });
  t.deepEqual(await dropped, [{ what: 'trigger', epoch: 3, currentEpoch: 4 }]);

  await bus.publishRecover({ jobId: 'job', epoch: 5, checkpointId: 0 });
  await eventually(() => w.epoch === 5);
  t.deepEqual(w.recovered, [{ jobId: 'job', epoch: 5, checkpointId: 0 }]);
  await bus.publishTrigger({ jobId: 'job', checkpointId: 2, epoch: 5 });
  await eventually(() => tasksOf(stub, 2).length === 2);
  t.true(stub.acks.every((a) => a.epoch === 5));
  t.is(tasksOf(stub, 1).length, 0);
});

test('the session carries the token and heartbeats; close ends it cleanly, kill drops it', async (t) => {
  const { stub, bus, worker } = await rig(t, { heartbeatIntervalMs: 20 });
  const w1 = await worker({ workerId: 'w1', taskIds: ['a'], token: 'sekret' });
  const w2 = await worker({ workerId: 'w2', taskIds: ['b'] });
  t.deepEqual(stub.sessions[0]?.metadata.get('authorization'), ['Bearer sekret']);
  t.deepEqual(stub.sessions[1]?.metadata.get('authorization'), []);
  await eventually(() => (stub.sessions[0]?.heartbeats ?? 0) >= 3, { what: 'heartbeats' });
  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 });
  await eventually(() => stub.acks.length === 2);
  t.deepEqual(stub.unaryMetadata.map((m) => m.get('authorization')).sort(), [[], ['Bearer sekret']]);

  const ended: unknown[] = [];
  w1.events.on('session-ended', (e) => ended.push(e));
  await w1.close();
  t.is(w1.state, 'closed');
  t.true(stub.sessions[0]?.ended);
  t.deepEqual(ended, [], 'a clean close reports no session failure');
  t.false(stub.sessions[1]?.ended);
  w2.kill();
  t.is(w2.state, 'closed');
  await eventually(() => stub.sessions[1]?.ended);
});

test('a refused hello rejects the start with the coordinator reason', async (t) => {
  const { worker } = await rig(t, {
    refuseHello: () => ({
      code: grpc.status.ALREADY_EXISTS,
      reason: 'TASK_ALREADY_ATTACHED',
      message: 'task a is attached by w0',
      ids: { 'ckpt-task-id': 'a', 'ckpt-job-id': 'job' },
    }),
  });
  const err = await t.throwsAsync(worker({ workerId: 'w', taskIds: ['a'] }));
  t.is(errorReason(err), 'TASK_ALREADY_ATTACHED');
  t.deepEqual(errorInfo(err)?.ids, { jobId: 'job', taskId: 'a' });
});

test('options naming tasks outside the spec are refused before connecting', async (t) => {
  const { worker } = await rig(t);
  await t.throwsAsync(worker({ workerId: 'w', taskIds: ['nope'] }), { message: /^MALFORMED: task nope/ });
  await t.throwsAsync(worker({ workerId: 'w', taskIds: ['bad.id'] }), { message: /^MALFORMED/ });
});

test('10,000 sources in one worker share one trigger subscription and ack in one call', async (t) => {
  const big: JobSpec = {
    jobId: 'job',
    tasks: Array.from({ length: 10_000 }, (_, i) => ({ taskId: `s${i}`, inputs: [] })),
  };
  const { stub, bus, worker, prefix } = await rig(t);
  const nc = await natsConnection(t, servers.natsUrl);
  let barriers = 0;
  nc.subscribe(`${prefix}.job.data.*`, { callback: () => void (barriers += 1) });
  await nc.flush();
  const w = await worker({ workerId: 'w', taskIds: big.tasks!.map((x) => x.taskId!), spec: big });
  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 });
  await eventually(() => w.acked.get(1)?.length === 10_000, { timeoutMs: 30_000, what: '10,000 acknowledged tasks' });
  t.is(stub.acks.length, 1);
  t.is(stub.acks[0]?.snapshots.length, 10_000);
  await eventually(() => barriers === 10_000, { what: '10,000 barriers' });
  const subz = (await (await fetch(`${servers.nats.monitorUrl}/connz?subs=1`)).json()) as {
    connections: { name?: string; subscriptions_list?: string[] }[];
  };
  const mine = subz.connections.find((c) => c.name === 'ckpt-sim-w');
  t.deepEqual(mine?.subscriptions_list?.sort(), [
    `${prefix}.job.abort`,
    `${prefix}.job.complete`,
    `${prefix}.job.recover`,
    `${prefix}.job.trigger`,
  ]);
});

test('acknowledgements above the size limit are split into several calls', async (t) => {
  const { stub, bus, worker } = await rig(t);
  const many: JobSpec = {
    jobId: 'job',
    tasks: Array.from({ length: 50 }, (_, i) => ({ taskId: `s${i}`, inputs: [] })),
  };
  const w = await worker({
    workerId: 'w',
    taskIds: many.tasks!.map((x) => x.taskId!),
    spec: many,
    maxAckRequestBytes: 2000,
  });
  await bus.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 });
  await eventually(() => w.acked.get(1)?.length === 50);
  t.true(stub.acks.length > 1, String(stub.acks.length));
  t.is(
    stub.acks.reduce((n, a) => n + a.snapshots.length, 0),
    50,
  );
});

test('when the coordinator goes away the worker reports it and still closes at once', async (t) => {
  const { stub, worker } = await rig(t);
  const w = await worker({ workerId: 'w', taskIds: ['a'] });
  const ended = w.waitFor('session-ended');
  stub.close();
  const [event] = await ended;
  t.truthy(event.error);
  const started = Date.now();
  await w.close();
  t.true(Date.now() - started < 2000, `close took ${Date.now() - started} ms`);
});
