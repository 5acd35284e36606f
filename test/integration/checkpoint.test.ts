/**
 * End to end: a coordinator on real etcd and NATS, simulated workers that
 * speak raw gRPC and NATS, and the manifest read back from etcd.
 */
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import { createEtcdStore } from '../../src/store/index.js';
import { silentLogger } from '../../src/log/index.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import { eventually, useServers, within } from '../helpers/index.js';
import { fanInSpec, sourcesSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { SimulatedWorker } from '../sim/index.js';

const servers = useServers();

/** Splits the spec's tasks over `workers` simulated workers. */
async function startWorkers(
  c: TestCoordinator,
  spec: JobSpec,
  workers: number,
  acknowledgeVia: 'session' | 'call' = 'session',
): Promise<SimulatedWorker[]> {
  const ids = (spec.tasks ?? []).map((t) => t.taskId as string);
  const started = await Promise.all(
    Array.from({ length: workers }, (_, w) =>
      c.worker({
        jobId: spec.jobId as string,
        workerId: `w${w}`,
        taskIds: ids.filter((_, i) => i % workers === w),
        spec,
        acknowledgeVia,
      }),
    ),
  );
  await c.started(spec.jobId as string);
  return started;
}

function byTask(snapshots: TaskSnapshot__Output[]): Map<string, TaskSnapshot__Output> {
  return new Map(snapshots.map((s) => [s.taskId, s]));
}

async function readManifest(c: TestCoordinator, jobId: string, id: number) {
  const store = createEtcdStore({ hosts: [servers.etcdUrl], prefix: c.prefix.etcd, logger: silentLogger() });
  try {
    return await store.readManifest(jobId, id);
  } finally {
    await store.close();
  }
}

for (const [tasks, workers, via] of [
  [1, 1, 'session'],
  [3, 2, 'session'],
  [50, 3, 'session'],
  [50, 3, 'call'],
] as const) {
  test(`a checkpoint of ${tasks} tasks acknowledged in ${via === 'call' ? 'calls' : 'the sessions'} commits the manifest the tasks acknowledged`, async (t) => {
    const c = await startTestCoordinator(t, servers);
    const spec =
      tasks === 1 ? sourcesSpec('job', 1) : fanInSpec('job', Math.ceil((tasks * 2) / 3), Math.floor(tasks / 3));
    t.is(spec.tasks?.length, tasks);
    await c.client.submitJob({ spec });
    const ws = await startWorkers(c, spec, workers, via);
    const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 20_000 });
    t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
    const id = res.checkpoint?.checkpointId ?? 0;
    t.is(res.checkpoint?.acknowledgedTasks, tasks);
    await Promise.all(ws.map((w) => w.waitForComplete(id)));

    const acked = byTask(ws.flatMap((w) => w.acked.get(id) ?? []));
    t.is(acked.size, tasks);
    const manifest = await readManifest(c, 'job', id);
    t.truthy(manifest);
    t.is(manifest?.checkpointId, id);
    t.is(manifest?.tasks.length, tasks);
    for (const task of manifest?.tasks ?? []) t.deepEqual(task, acked.get(task.taskId));

    const job = await c.client.getJob({ jobId: 'job' });
    t.is(job.job?.latestCheckpointId, id);
    t.is(job.job?.checkpointing, 'JOB_CHECKPOINTING_CHECKPOINTED');
    const got = await c.query.getCheckpoint({ jobId: 'job', checkpointId: id });
    t.deepEqual(got.manifest?.tasks, manifest?.tasks);
  });
}

test('periodic checkpoints follow the policy and retention keeps exactly the configured count', async (t) => {
  // The 10,000-task test of this file can stall this process for seconds on a
  // loaded machine: a session that misses heartbeats for 2 s would end, and
  // this worker does not attach again.
  const c = await startTestCoordinator(t, servers, { heartbeatTimeoutMs: 10_000 });
  const spec = fanInSpec('job', 2, 1, { intervalMs: 50, retained: 3 });
  await c.client.submitJob({ spec });
  const [w] = await startWorkers(c, spec, 1);
  await within(
    new Promise<void>((resolve) => {
      w?.events.on('complete', (m) => m.checkpointId >= 6 && resolve());
    }),
    'the completion of checkpoint 6',
  );
  await c.client.cancelJob({ jobId: 'job' });
  await c.running.coordinator.settled();
  const list = await c.query.listCheckpoints({ jobId: 'job' });
  const completed = list.checkpoints.filter((x) => x.state === 'CHECKPOINT_STATE_COMPLETED').map((x) => x.checkpointId);
  const latest = (await c.client.getJob({ jobId: 'job' })).job?.latestCheckpointId ?? 0;
  const dump = await c.dump();
  const roots = Object.keys(dump).filter((k) => k.endsWith('/root'));
  t.is(roots.length, 3);
  t.deepEqual(
    roots.map((k) => Number(k.split('/').at(-2))).sort((a, b) => a - b),
    [latest - 2, latest - 1, latest],
  );
  t.true(completed.length >= 6, 'the in-memory history lists the completed ones too');
  const summaries = Object.keys(dump).filter((k) => k.endsWith('/summary'));
  t.is(summaries.length, 3);
});

test('a missing acknowledgement times out into ABORTED with an abort broadcast', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 2, 1, { timeoutMs: 2000 });
  await c.client.submitJob({ spec });
  const ws = await startWorkers(c, spec, 1);
  ws[0]?.setBehaviour('sink-0', 'silent');
  const before = await c.dump();
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_ABORTED');
  t.is(res.checkpoint?.abortReason, 'ABORT_REASON_TIMEOUT');
  t.is(res.checkpoint?.acknowledgedTasks, 2);
  const id = res.checkpoint?.checkpointId ?? 0;
  await t.throwsAsync(ws[0]!.waitForComplete(id, { timeoutMs: 5000 }), { message: /aborted/ });
  t.is(ws[0]?.aborted.get(id)?.reason, 'ABORT_REASON_TIMEOUT');
  const after = await c.dump();
  t.deepEqual(
    Object.keys(after).filter((k) => k.includes('/checkpoints/')),
    [],
  );
  t.is(after[`${c.prefix.etcd}jobs/job/latest`], before[`${c.prefix.etcd}jobs/job/latest`]);
});

test('a decline aborts the checkpoint with the task and its reason', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 2, 1, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const ws = await startWorkers(c, spec, 2);
  for (const w of ws) w.setBehaviour('src-1', 'decline');
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_ABORTED');
  t.is(res.checkpoint?.abortReason, 'ABORT_REASON_DECLINED');
  t.regex(res.checkpoint?.abortMessage ?? '', /src-1/);
  const id = res.checkpoint?.checkpointId ?? 0;
  await Promise.all(ws.map((w) => t.throwsAsync(w.waitForComplete(id, { timeoutMs: 5000 }))));
  const job = await c.client.getJob({ jobId: 'job' });
  t.is(job.job?.latestCheckpointId, 0);
  t.is(job.job?.checkpointing, 'JOB_CHECKPOINTING_IDLE');
  for (const w of ws) w.setBehaviour('src-1', 'ack');
  const next = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((next.checkpoint?.checkpointId ?? 0) > id);
});

test('with two checkpoints pending, the older one acknowledged last is subsumed, not failed', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1, { maxConcurrent: 2, tolerableFailures: 0 });
  await c.client.submitJob({ spec });
  // The task holds its acknowledgements until both checkpoints have snapshotted.
  const held = new Map<number, () => void>();
  let bothHeld: () => void = () => undefined;
  const both = new Promise<void>((resolve) => (bothHeld = resolve));
  const [w] = await startWorkers(c, spec, 1);
  w?.setBehaviour(
    't00000',
    (ctx) =>
      new Promise((resolve) => {
        held.set(ctx.checkpointId, () => resolve('ack'));
        if (held.size === 2) bothHeld();
      }),
  );
  const epoch = (await c.client.getJob({ jobId: 'job' })).job?.epoch;
  const older = await c.client.triggerCheckpoint({ jobId: 'job' });
  const newer = await c.client.triggerCheckpoint({ jobId: 'job' });
  const olderId = older.checkpoint?.checkpointId ?? 0;
  const newerId = newer.checkpoint?.checkpointId ?? 0;
  await within(both, 'both checkpoints snapshotted');
  // The newer one is acknowledged first; the older one's acknowledgement follows while it commits.
  held.get(newerId)?.();
  held.get(olderId)?.();
  await eventually(
    async () => {
      const listed = (await c.query.listCheckpoints({ jobId: 'job' })).checkpoints;
      return listed.filter((s) => s.state !== 'CHECKPOINT_STATE_PENDING').length === 2;
    },
    { what: 'both checkpoints finished' },
  );
  const byId = new Map((await c.query.listCheckpoints({ jobId: 'job' })).checkpoints.map((s) => [s.checkpointId, s]));
  t.is(byId.get(newerId)?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.like(byId.get(olderId), { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_SUBSUMED' });
  const job = (await c.client.getJob({ jobId: 'job' })).job;
  t.is(job?.latestCheckpointId, newerId);
  t.is(job?.epoch, epoch, 'no recovery');
});

test('checkpoint ids keep increasing across a coordinator restart', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 3);
  await c.client.submitJob({ spec });
  let ws = await startWorkers(c, spec, 1);
  const first = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const second = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.true((second.checkpoint?.checkpointId ?? 0) > (first.checkpoint?.checkpointId ?? 0));
  await Promise.all(ws.map((w) => w.close()));
  await c.restart();
  const job = await c.client.getJob({ jobId: 'job' });
  t.is(job.job?.latestCheckpointId, second.checkpoint?.checkpointId);
  t.deepEqual(
    job.job?.spec?.tasks.map((x) => x.taskId),
    ['t00000', 't00001', 't00002'],
  );
  ws = await startWorkers(c, spec, 1);
  const third = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(third.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((third.checkpoint?.checkpointId ?? 0) > (second.checkpoint?.checkpointId ?? 0));
  const floor = Number((await c.dump())[`${c.prefix.etcd}jobs/job/id-floor`]);
  t.true(floor > (third.checkpoint?.checkpointId ?? 0), 'the stored floor covers every id handed out');
});

test('WatchCheckpoints streams triggered, completed and aborted events', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 2, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const ws = await startWorkers(c, spec, 1);
  const abort = new AbortController();
  const seen: string[] = [];
  const subscribers = c.running.coordinator.events.size;
  const watching = (async () => {
    for await (const e of c.query.watchCheckpoints({ jobId: 'job' }, { signal: abort.signal })) {
      seen.push(`${e.checkpointId}:${e.state.replace('CHECKPOINT_STATE_', '')}`);
      if (seen.length === 4) abort.abort();
    }
  })();
  await eventually(() => c.running.coordinator.events.size > subscribers, { what: 'the watch subscribed' });
  const a = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  ws[0]?.setBehaviour('t00001', 'decline');
  const b = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  await watching;
  const ida = a.checkpoint?.checkpointId ?? 0;
  const idb = b.checkpoint?.checkpointId ?? 0;
  t.deepEqual(seen, [`${ida}:PENDING`, `${ida}:COMPLETED`, `${idb}:PENDING`, `${idb}:ABORTED`]);
});

test('a job of 10,000 tasks with a manifest over 1.5 MiB commits atomically', async (t) => {
  t.timeout(180_000);
  const c = await startTestCoordinator(t, servers, { heartbeatTimeoutMs: 30_000, heartbeatIntervalMs: 1000 });
  const spec = sourcesSpec('big', 10_000, { timeoutMs: 120_000 });
  await c.client.submitJob({ spec });
  // Longer state URIs, as a blob store with deep paths and random object names would report them: random
  // enough that even compressed the manifest is larger than one part.
  const ids = (spec.tasks ?? []).map((x) => x.taskId as string);
  const ws = await Promise.all(
    [0, 1].map((w) =>
      c.worker({
        jobId: 'big',
        workerId: `w${w}`,
        taskIds: ids.filter((_, i) => i % 2 === w),
        spec,
        behaviour: ({ snapshot }) => ({
          ...snapshot,
          state: { ...snapshot.state!, uri: `${snapshot.state?.uri ?? ''}/${randomBytes(100).toString('hex')}` },
        }),
      }),
    ),
  );
  await c.started('big');
  const res = await c.client.triggerCheckpoint({ jobId: 'big', wait: true }, { deadlineMs: 150_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true(
    (res.checkpoint?.manifestBytes ?? 0) > 1.5 * 1024 * 1024,
    `manifest is ${res.checkpoint?.manifestBytes} bytes`,
  );
  t.true((res.checkpoint?.manifestParts ?? 0) > 1);
  const id = res.checkpoint?.checkpointId ?? 0;
  const manifest = await readManifest(c, 'big', id);
  t.is(manifest?.tasks.length, 10_000);
  const acked = byTask(ws.flatMap((w) => w.acked.get(id) ?? []));
  t.is(acked.size, 10_000);
  let equal = 0;
  for (const task of manifest?.tasks ?? []) if (isDeepStrictEqual(task, acked.get(task.taskId))) equal += 1;
  t.is(equal, 10_000);
});
