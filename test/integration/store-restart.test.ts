/**
 * One bad value written into etcd for one job, and a coordinator restart:
 * the new coordinator starts (its load quarantines that job instead of
 * failing), shows that job with the key and problem, and goes on
 * checkpointing every other job.
 */
import test from 'ava';
import { sourcesSpec, startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/index.js';

const servers = useServers();

test('a job whose epoch is "abc" does not keep a restarted coordinator from serving the others', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const good = sourcesSpec('good', 2);
  await c.client.submitJob({ spec: good });
  await c.client.submitJob({ spec: sourcesSpec('bad', 1) });
  const taskIds = (good.tasks ?? []).map((task) => task.taskId ?? '');
  let worker = await c.worker({ jobId: 'good', workerId: 'w0', taskIds, spec: good });
  await c.started('good');
  const first = await c.client.triggerCheckpoint({ jobId: 'good', wait: true }, { deadlineMs: 10_000 });
  t.is(first.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  await worker.close();

  await c.etcd.put(`${c.prefix.etcd}jobs/bad/epoch`).value('abc');
  await c.restart();

  const bad = (await c.client.getJob({ jobId: 'bad' })).job;
  t.is(bad?.state, 'JOB_STATE_QUARANTINED');
  t.is(bad?.quarantineReason, `${c.prefix.etcd}jobs/bad/epoch: "abc" is not a 20-digit decimal number`);
  const job = (await c.client.getJob({ jobId: 'good' })).job;
  t.like(job, { state: 'JOB_STATE_RUNNING', latestCheckpointId: first.checkpoint?.checkpointId });
  worker = await c.worker({ jobId: 'good', workerId: 'w1', taskIds, spec: good });
  t.teardown(() => worker.close());
  await c.started('good');
  const next = await c.client.triggerCheckpoint({ jobId: 'good', wait: true }, { deadlineMs: 10_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((next.checkpoint?.checkpointId ?? 0) > (first.checkpoint?.checkpointId ?? 0));
  t.is((await c.dump())[`${c.prefix.etcd}jobs/bad/epoch`], 'abc', 'the bad record is left for a person to repair');
});
