/**
 * Checkpoints under failure: workers that leave or stop heartbeating,
 * more failures than the policy tolerates, coordinator restarts and
 * cancellation. Each ends pending checkpoints with the right reason.
 */
import test from 'ava';
import { pino } from 'pino';
import { restartDelayMs } from '../../src/coordinator/restart-backoff.js';
import { startTcpProxy } from '../../src/dev/index.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';
import { errorInfo } from '../../src/client/index.js';
import { useServers } from '../helpers/index.js';
import { eventually, within } from '../helpers/wait.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

test('a worker leaving aborts pending checkpoints with TASK_FAILURE; checkpoints resume when it is back', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 2, 1, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const a = await c.worker({ jobId: 'job', workerId: 'a', taskIds: ['src-0', 'src-1'], spec });
  const b = await c.worker({ jobId: 'job', workerId: 'b', taskIds: ['sink-0'], spec, behaviour: 'silent' });
  await c.started('job');
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  await eventually(
    async () =>
      (await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint?.acknowledgedTasks === 2,
  );
  await b.close();
  const aborted = await eventually(async () => {
    const s = (await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending })).checkpoint;
    return s?.state === 'CHECKPOINT_STATE_ABORTED' ? s : undefined;
  });
  t.is(aborted.abortReason, 'ABORT_REASON_TASK_FAILURE');
  t.regex(aborted.abortMessage, /a worker left: the worker ended its session/);
  await eventually(() => a.aborted.has(pending));
  const err = await t.throwsAsync(c.client.triggerCheckpoint({ jobId: 'job' }));
  t.is(errorInfo(err)?.reason, 'TASKS_NOT_READY');
  // The tasks that stayed roll back too: a new epoch, restored from the latest checkpoint (none yet).
  const restore = await eventually(() => a.restored.find((r) => r.epoch === 2));
  t.is(restore.checkpointId, 0);
  const b2 = await c.worker({ jobId: 'job', workerId: 'b2', taskIds: ['sink-0'], spec });
  await c.started('job');
  t.deepEqual(
    b2.restored.map((r) => [r.epoch, r.checkpointId]),
    [[2, 0]],
  );
  t.deepEqual(a.started, [1, 2]);
  const next = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
});

test('a session without heartbeats times out and its tasks detach', async (t) => {
  // 1000 ms: a loaded machine can stall this process for a few hundred
  // milliseconds, which must not end the session before heartbeats stop.
  const c = await startTestCoordinator(t, servers, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 1000 });
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 2);
  const ended = new Promise<Error | undefined>((resolve) =>
    w.events.once('session-ended', ({ error }) => resolve(error)),
  );
  w.setHeartbeats(false);
  t.is(errorInfo(await within(ended, 'the session to end'))?.reason, 'UNAVAILABLE');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.attachedTasks, 0);
});

test('more consecutive failures than tolerated start a recovery: new epoch, recover broadcast, old epoch refused', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1, { tolerableFailures: 1 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('job');
  const ok = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const committed = ok.checkpoint?.checkpointId ?? 0;
  w.setBehaviour('sink-0', 'decline');
  const first = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(first.checkpoint?.abortReason, 'ABORT_REASON_DECLINED');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.epoch, 1, 'one failure is tolerated');
  const second = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(second.checkpoint?.abortReason, 'ABORT_REASON_DECLINED');
  await eventually(() => w.recovered.length === 1);
  t.deepEqual(w.recovered[0], { jobId: 'job', epoch: 2, checkpointId: committed, term: c.running.term?.term });
  t.is((await c.client.getJob({ jobId: 'job' })).job?.epoch, 2);
  t.is((await c.dump())[`${c.prefix.etcd}jobs/job/epoch`], '2'.padStart(20, '0'));
  const restore = await eventually(() => w.restored.find((r) => r.epoch === 2));
  t.is(restore.checkpointId, committed);
  const byTask = (list: typeof restore.snapshots) => [...list].sort((x, y) => x.taskId.localeCompare(y.taskId));
  t.deepEqual(
    restore.snapshots.map((s) => s.taskId),
    ['src-0', 'sink-0'],
    'the tasks of the hello, in its order',
  );
  t.deepEqual(byTask(restore.snapshots), byTask(w.acked.get(committed) ?? []), 'what the tasks acknowledged');
  w.setBehaviour('sink-0', 'ack');
  await c.started('job');
  const after = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  t.is(after.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.is(after.checkpoint?.epoch, 2);
  const stale = await t.throwsAsync(
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: 1,
      checkpointId: after.checkpoint?.checkpointId ?? 0,
      workerId: 'w',
      snapshots: [{ taskId: 'src-0' }],
      sessionToken: w.welcome?.sessionToken ?? '',
    }),
  );
  t.is(errorInfo(stale)?.reason, 'STALE_EPOCH');
});

test('a coordinator restart aborts what was pending with COORDINATOR_RESTART', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  // The new coordinator leads in a new term: its abort counts once the worker's session confirmed that term.
  const w = await c.worker({
    jobId: 'job',
    workerId: 'w',
    taskIds: ['src-0', 'sink-0'],
    spec,
    behaviour: { 'sink-0': 'silent' },
    reattach: true,
  });
  await c.started('job');
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  await c.restart();
  // The new coordinator does not know what was pending: it aborts every id up to the ones it may hand out.
  const abort = await eventually(() =>
    [...w.aborted.values()].find((a) => a.reason === 'ABORT_REASON_COORDINATOR_RESTART'),
  );
  t.true(abort.checkpointId >= pending);
  t.is((await c.client.getJob({ jobId: 'job' })).job?.latestCheckpointId, 0);
});

test('cancelling a job aborts pending checkpoints and tells its workers', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  const w = await c.worker({
    jobId: 'job',
    workerId: 'w',
    taskIds: ['src-0', 'sink-0'],
    spec,
    behaviour: { 'sink-0': 'silent' },
  });
  const canceled = new Promise((resolve) => w.events.once('canceled', resolve));
  await c.started('job');
  const pending = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const job = await c.client.cancelJob({ jobId: 'job' });
  t.is(job.job?.state, 'JOB_STATE_CANCELED');
  await within(canceled, 'the cancellation at the worker');
  t.is((await eventually(() => w.aborted.get(pending))).reason, 'ABORT_REASON_JOB_CANCELED');
  t.is(errorInfo(await t.throwsAsync(c.client.triggerCheckpoint({ jobId: 'job' })))?.reason, 'JOB_CANCELED');
  await c.restart();
  t.is(
    (await c.client.getJob({ jobId: 'job' })).job?.state,
    'JOB_STATE_CANCELED',
    'the cancellation is stored in etcd',
  );
});

test('a task failure rolls every task of the job back to the same checkpoint', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 2, 1);
  await c.client.submitJob({ spec });
  const a = await c.worker({ jobId: 'job', workerId: 'a', taskIds: ['src-0', 'src-1'], spec });
  const b = await c.worker({ jobId: 'job', workerId: 'b', taskIds: ['sink-0'], spec });
  await c.started('job');
  const done = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const id = done.checkpoint?.checkpointId ?? 0;
  b.fail('sink-0', 'out of memory');
  const [ra, rb] = await Promise.all([
    eventually(() => a.restored.find((r) => r.epoch === 2)),
    eventually(() => b.restored.find((r) => r.epoch === 2)),
  ]);
  t.is(ra.checkpointId, id);
  t.is(rb.checkpointId, id);
  t.deepEqual(
    ra.snapshots.map((s) => s.taskId),
    ['src-0', 'src-1'],
  );
  t.deepEqual(
    rb.snapshots.map((s) => s.taskId),
    ['sink-0'],
  );
  await c.started('job');
  t.is((await c.client.getJob({ jobId: 'job' })).job?.epoch, 2);
  const stale = await t.throwsAsync(
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: 1,
      checkpointId: id + 1,
      workerId: 'a',
      snapshots: [{ taskId: 'src-0' }],
      sessionToken: a.welcome?.sessionToken ?? '',
    }),
  );
  t.is(errorInfo(stale)?.reason, 'STALE_EPOCH');
});

test('a periodic trigger that cannot reach etcd backs off instead of retrying at once', async (t) => {
  const proxy = await startTcpProxy({ target: new URL(servers.etcdUrl).host });
  t.teardown(() => proxy.close());
  const failures: { at: number; retryInMs: number }[] = [];
  const logger = pino(
    { level: 'error' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; time: number; retryInMs: number };
        if (entry.msg === 'periodic trigger failed') failures.push({ at: entry.time, retryInMs: entry.retryInMs });
      },
    },
  );
  // One id per etcd write, so that every trigger needs etcd.
  const c = await startTestCoordinator(
    t,
    servers,
    { etcd: [`http://${proxy.address}`], idBlockSize: 1, etcdTimeoutMs: 1000, leaseTtlMs: 20_000 },
    { logger },
  );
  const spec = fanInSpec('job', 1, 1, { intervalMs: 1000, tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  await c.worker({ jobId: 'job', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('job');
  const latest = async () => (await c.client.getJob({ jobId: 'job' })).job?.latestCheckpointId ?? 0;
  await eventually(async () => (await latest()) >= 1, { timeoutMs: 10_000 });

  proxy.cut();
  await eventually(() => failures.length >= 5, { timeoutMs: 15_000, what: 'five failed periodic triggers' });
  proxy.restore();
  // Retries 100, 200, 400 and 800 ms apart, then every 1000 ms (the checkpoint interval): not at once.
  const first = failures.slice(0, 5);
  t.deepEqual(
    first.map((f) => f.retryInMs),
    [100, 200, 400, 800, 1000],
  );
  const gaps = first.slice(1).map((f, i) => f.at - (first[i]?.at ?? 0));
  // Each retry waits for its backoff. The backoff starts a moment before the
  // failure's log time: half of it leaves room for a busy machine.
  for (const [i, gap] of gaps.entries()) t.true(gap >= (first[i]?.retryInMs ?? 0) / 2, `gaps ${gaps.join(', ')} ms`);
  const before = await latest();
  await eventually(async () => (await latest()) > before, { timeoutMs: 15_000, what: 'checkpoints resume' });
});

test('recoveries in a row back off: a task failing every restore is restored after growing pauses', async (t) => {
  const backoffs: { delayMs: number; recoveriesInARow: number }[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; delayMs: number; recoveriesInARow: number };
        if (entry.msg !== 'job recovery: backing off before the restart') return;
        backoffs.push({ delayMs: entry.delayMs, recoveriesInARow: entry.recoveriesInARow });
      },
    },
  );
  const c = await startTestCoordinator(t, servers, {}, { logger });
  const spec = fanInSpec('job', 1, 1, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  // A worker whose task fails at every restore, as one whose state store is unreachable.
  const restores: { epoch: number; at: number }[] = [];
  const call = c.client.attach();
  t.teardown(() => call.cancel());
  call.on('error', () => {});
  call.on('data', (m: AttachResponse__Output) => {
    if (!m.restore) return;
    restores.push({ epoch: m.restore.epoch, at: Date.now() });
    if (restores.length < 5) {
      call.write({ failure: { taskId: 'sink-0', epoch: m.restore.epoch, message: 'state store unreachable' } });
    } else {
      call.write({ ready: { epoch: m.restore.epoch, taskIds: ['src-0', 'sink-0'] } });
    }
  });
  call.write({ hello: { workerId: 'w', jobId: 'job', taskIds: ['src-0', 'sink-0'] } });
  const beat = setInterval(() => call.write({ heartbeat: { sentAtMs: Date.now() } }), 200);
  t.teardown(() => clearInterval(beat));
  await eventually(() => restores.length >= 5, { timeoutMs: 15_000, what: 'five restores' });
  await c.started('job');
  // The first recovery starts at once (it logs no backoff); then 250, 500 and 1000 ms (±20 %) pass before each restart.
  t.deepEqual(
    backoffs.map((b) => b.recoveriesInARow),
    [2, 3, 4],
  );
  for (const [i, base] of [250, 500, 1000].entries()) {
    const { delayMs } = backoffs[i]!;
    t.true(delayMs >= base * 0.8 && delayMs <= base * 1.2, `backoff ${delayMs} ms, ${base} ms ±20 %`);
  }
  const gaps = restores.slice(1).map((r, i) => r.at - (restores[i]?.at ?? 0));
  for (const [i, b] of backoffs.entries()) t.true(gaps[i + 1]! >= b.delayMs, `gaps ${gaps.join(', ')} ms`);
  t.deepEqual(
    restores.map((r) => r.epoch),
    [1, 2, 3, 4, 5].map((n) => restores[0]!.epoch + n - 1),
  );
  t.deepEqual(
    [0, 1, 2, 3, 4, 5, 10].map((n) => restartDelayMs(n, () => 0.5)),
    [0, 250, 500, 1000, 2000, 4000, 4000],
  );
});
