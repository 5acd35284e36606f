/**
 * Checkpoint statistics kept in etcd: counts, figures, the latest
 * completed, failed and restored, and the history with aborted checkpoints
 * and per-task figures, read back the same by the next leader; a corrupt
 * record is replaced, never fatal; a record too large for its budget is
 * trimmed.
 */
import test from 'ava';
import { emptyStatistics } from '../../src/core/checkpoint-stats.js';
import type { StoredCheckpointStatistics__Output } from '../../src/gen/ckpt/v1/StoredCheckpointStatistics.js';
import { silentLogger } from '../../src/log/index.js';
import { createEtcdStore } from '../../src/store/index.js';
import { encodeStatistics } from '../../src/store/statistics.js';
import { codec } from '../../src/proto/index.js';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

test('statistics count every checkpoint and restore, and a restarted coordinator shows the same', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const store = createEtcdStore({ hosts: [servers.etcdUrl], prefix: c.prefix.etcd, logger: silentLogger() });
  t.teardown(() => store.close());
  const spec = fanInSpec('sjob', 2, 1, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  const w = await c.worker({ jobId: 'sjob', workerId: 'w0', taskIds: ids, spec });
  await c.started('sjob');
  const trigger = () => c.client.triggerCheckpoint({ jobId: 'sjob', wait: true }, { deadlineMs: 10_000 });
  const completed = [(await trigger()).checkpoint, (await trigger()).checkpoint];
  w.setBehaviour('src-1', 'decline');
  const declined = (await trigger()).checkpoint;
  t.is(declined?.state, 'CHECKPOINT_STATE_ABORTED');
  w.setBehaviour('src-1', 'ack');
  const last = (await trigger()).checkpoint;
  t.is(last?.state, 'CHECKPOINT_STATE_COMPLETED');
  await c.client.restoreJob({ jobId: 'sjob', checkpointId: last?.checkpointId ?? 0 });
  await c.started('sjob');

  const stats = await eventually(
    async () => {
      const s = (await c.query.getCheckpointStatistics({ jobId: 'sjob' })).statistics;
      return s !== null && s.counts !== null && s.counts.restored === 1 && s.counts.inProgress === 0 ? s : undefined;
    },
    { what: 'the restore counted' },
  );
  t.like(stats.counts, { completed: 3, failed: 1, inProgress: 0, triggered: 4 });
  t.like(stats.durationMs, { count: 3 });
  t.true((stats.durationMs?.max ?? 0) >= (stats.durationMs?.p50 ?? 0));
  t.true((stats.durationMs?.p50 ?? 0) >= (stats.durationMs?.min ?? 0));
  t.like(stats.stateSizeBytes, { count: 3 });
  t.is(stats.latestCompleted?.checkpointId, last?.checkpointId);
  t.true((stats.latestCompleted?.manifestBytes ?? 0) > 0, 'the stored summary carries its manifest size');
  t.is(stats.latestFailed?.checkpointId, declined?.checkpointId);
  t.is(stats.latestFailed?.abortReason, 'ABORT_REASON_DECLINED');
  t.like(stats.latestRestored, { checkpointId: last?.checkpointId });
  t.deepEqual(
    stats.history.map((h) => [h.checkpointId, h.state]),
    [
      [last?.checkpointId, 'CHECKPOINT_STATE_COMPLETED'],
      [declined?.checkpointId, 'CHECKPOINT_STATE_ABORTED'],
      [completed[1]?.checkpointId, 'CHECKPOINT_STATE_COMPLETED'],
      [completed[0]?.checkpointId, 'CHECKPOINT_STATE_COMPLETED'],
    ],
  );
  t.true(stats.history.every((h) => h.latestAcknowledgedAtMs === 0 || h.latestAcknowledgedAtMs >= h.triggeredAtMs));
  t.true(
    (stats.history[0]?.latestAcknowledgedAtMs ?? 0) >= (stats.history[0]?.triggeredAtMs ?? 0) &&
      (stats.history[0]?.latestAcknowledgedAtMs ?? 0) > 0,
  );

  // The aborted checkpoint keeps its per-task figures: who acknowledged, who did not.
  const aborted = await c.query.getCheckpoint({ jobId: 'sjob', checkpointId: declined?.checkpointId ?? 0 });
  t.is(aborted.checkpoint?.abortReason, 'ABORT_REASON_DECLINED');
  t.deepEqual(
    aborted.tasks.map((task) => task.taskId),
    [...ids].sort(),
  );
  const decliner = aborted.tasks.find((task) => task.taskId === 'src-1');
  t.is(decliner?.acknowledgedAtMs, 0);
  t.is(decliner?.metrics, null);
  const done = await c.query.getCheckpoint({ jobId: 'sjob', checkpointId: last?.checkpointId ?? 0 });
  t.is(done.tasks.length, ids.length);
  t.true(done.tasks.every((task) => task.acknowledgedAtMs > 0 && task.metrics !== null));

  // Everything is in etcd (aborts and restores are written in a batch): a new leader shows the same.
  await eventually(async () => (await store.readStatistics('sjob'))?.restored === 1 || undefined, {
    what: 'the statistics written',
  });
  await w.close();
  await c.restart();
  const after = (await c.query.getCheckpointStatistics({ jobId: 'sjob' })).statistics;
  t.deepEqual(after, stats);
  const listed = (await c.query.listCheckpoints({ jobId: 'sjob' })).checkpoints.map((s) => s.checkpointId);
  t.true(listed.includes(declined?.checkpointId ?? 0), 'the aborted checkpoint is listed by the new leader');
  const again = await c.query.getCheckpoint({ jobId: 'sjob', checkpointId: declined?.checkpointId ?? 0 });
  t.deepEqual(again.tasks, aborted.tasks);
});

test('a corrupt statistics record is replaced and never stops the job', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('cjob', 1, 1);
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  const w = await c.worker({ jobId: 'cjob', workerId: 'w0', taskIds: ids, spec });
  await c.started('cjob');
  await c.client.triggerCheckpoint({ jobId: 'cjob', wait: true }, { deadlineMs: 10_000 });
  await w.close();
  const key = `${c.prefix.etcd}jobs/cjob/stats`;
  await c.etcd.put(key).value(Buffer.from([0xff, 0xff, 0xff, 0x07, 0x01]));
  const before = Date.now();
  await c.restart();
  const job = await c.client.getJob({ jobId: 'cjob' });
  t.is(job.job?.state, 'JOB_STATE_RUNNING', 'not quarantined');
  const fresh = (await c.query.getCheckpointStatistics({ jobId: 'cjob' })).statistics;
  t.like(fresh?.counts, { completed: 0, failed: 0 });
  t.true((fresh?.countingSinceMs ?? 0) >= before, 'counting starts anew, and says since when');
  await c.worker({ jobId: 'cjob', workerId: 'w1', taskIds: ids, spec });
  await c.started('cjob');
  const res = await eventually(
    () => c.client.triggerCheckpoint({ jobId: 'cjob', wait: true }, { deadlineMs: 10_000 }),
    { timeoutMs: 20_000, pollMs: 200, what: 'a checkpoint after the restart' },
  );
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const store = createEtcdStore({ hosts: [servers.etcdUrl], prefix: c.prefix.etcd, logger: silentLogger() });
  t.teardown(() => store.close());
  t.like(await store.readStatistics('cjob'), { completed: 1 }, 'the commit replaced the record');
  await t.throwsAsync(store.putStatistics('nojob', emptyStatistics(0)), { message: /does not exist/ });
});

test('a statistics record over its budget loses task figures of old checkpoints first, then old checkpoints', (t) => {
  const summary = (id: number) => ({
    jobId: 'j',
    checkpointId: id,
    epoch: 1,
    state: 'CHECKPOINT_STATE_COMPLETED' as const,
    abortReason: 'ABORT_REASON_UNSPECIFIED' as const,
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_FULL' as const,
    manual: false,
    triggeredAtMs: 1000 * id,
    finishedAtMs: 1000 * id + 50,
    totalTasks: 100,
    acknowledgedTasks: 100,
    stateSizeBytes: 1,
    persistedBytes: 1,
    maxAlignmentMs: 0,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 1000 * id + 40,
  });
  const tasks = Array.from({ length: 100 }, (_, i) => ({
    taskId: `task-${i}`,
    acknowledgedAtMs: 1,
    metrics: null,
    snapshotType: 'SNAPSHOT_TYPE_FULL' as const,
  }));
  const stats: StoredCheckpointStatistics__Output = {
    ...emptyStatistics(0),
    history: Array.from({ length: 20 }, (_, i) => ({ summary: summary(20 - i), tasks })),
  };
  const statsCodec = codec<StoredCheckpointStatistics__Output, StoredCheckpointStatistics__Output>(
    'StoredCheckpointStatistics',
  );
  const decode = (bytes: Uint8Array) => statsCodec.decode(bytes);
  const whole = encodeStatistics(stats, 1 << 20);
  t.truthy(whole);
  t.is(decode(whole as Uint8Array).history.length, 20);
  const budget = Math.floor((whole as Uint8Array).length / 2);
  const half = decode(encodeStatistics(stats, budget) as Uint8Array);
  t.true((encodeStatistics(stats, budget) as Uint8Array).length <= budget);
  t.is(half.history.length, 20, 'every checkpoint stays, some without task figures');
  t.deepEqual(half.history[0]?.tasks.length, 100, 'the newest keeps its tasks');
  t.is(half.history.at(-1)?.tasks.length, 0, 'the oldest lost them');
  const tiny = decode(encodeStatistics(stats, 600) as Uint8Array);
  t.true(tiny.history.length > 0 && tiny.history.length < 20);
  t.true(tiny.history.every((r) => r.tasks.length === 0));
  t.is(tiny.history[0]?.summary?.checkpointId, 20, 'the newest checkpoints are kept');
  t.is(encodeStatistics(stats, 2), undefined);
});
