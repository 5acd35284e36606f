/**
 * A job whose records in etcd are corrupt is quarantined, alone: listed
 * with its reason, its calls refused with JOB_QUARANTINED, while every
 * other job is served. A corrupt manifest found when a recovery needs it
 * quarantines the job then.
 */
import * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { errorInfo } from '../../src/client/index.js';
import type { ErrorReason } from '../../src/core/errors.js';
import { pad } from '../../src/store/index.js';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, sourcesSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

async function refused(t: ExecutionContext, call: Promise<unknown>, reason: ErrorReason): Promise<void> {
  const err = await t.throwsAsync<grpc.ServiceError>(call);
  t.is(errorInfo(err)?.reason, reason, err?.message);
}

test('a quarantined job is listed with its reason and its calls are refused, changing nothing', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('bad', 1);
  await c.client.submitJob({ spec });
  await c.client.submitJob({ spec: sourcesSpec('good', 1) });
  await c.etcd.put(`${c.prefix.etcd}jobs/bad/spec`).value(Buffer.from([0xff, 0xff, 0xff]));
  await c.restart();
  const before = await c.dump();

  const listed = (await c.query.listJobs({})).jobs.map((j) => [j.spec?.jobId, j.state]);
  t.deepEqual(listed, [
    ['bad', 'JOB_STATE_QUARANTINED'],
    ['good', 'JOB_STATE_RUNNING'],
  ]);
  t.regex((await c.client.getJob({ jobId: 'bad' })).job?.quarantineReason ?? '', /jobs\/bad\/spec/);
  await refused(t, c.client.triggerCheckpoint({ jobId: 'bad' }), 'JOB_QUARANTINED');
  await refused(t, c.client.cancelJob({ jobId: 'bad' }), 'JOB_QUARANTINED');
  await refused(t, c.client.restoreJob({ jobId: 'bad' }), 'JOB_QUARANTINED');
  await refused(t, c.client.submitJob({ spec }), 'JOB_QUARANTINED');
  await refused(t, c.query.listCheckpoints({ jobId: 'bad' }), 'JOB_QUARANTINED');
  const hello = c.client.attach();
  const ended = new Promise<grpc.ServiceError>((resolve) => hello.on('error', resolve));
  hello.write({ hello: { workerId: 'w', jobId: 'bad', taskIds: ['t00000'] } });
  t.is(errorInfo(await ended)?.reason, 'JOB_QUARANTINED');
  t.deepEqual(await c.dump(), before);
});

// The leader that committed a checkpoint restores it from the manifest its commit kept; a leader that
// takes over reads it from etcd, and finds it corrupt there.
test("a manifest found corrupt when a new leader's recovery needs it quarantines that job, and only it", async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  await c.client.submitJob({ spec: sourcesSpec('other', 1) });
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec, reattach: true });
  const other = await c.worker({
    jobId: 'other',
    workerId: 'o0',
    taskIds: ['t00000'],
    spec: sourcesSpec('other', 1),
    reattach: true,
  });
  await Promise.all([c.started('job'), c.started('other')]);
  const done = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  const id = done.checkpoint?.checkpointId ?? 0;
  const rootKey = `${c.prefix.etcd}jobs/job/checkpoints/${pad(id)}/root`;
  await c.etcd.put(rootKey).value(Buffer.from('not a manifest root'));
  await c.restart();
  await eventually(
    async () => ((await c.client.getJob({ jobId: 'job' })).job?.attempt === 'JOB_ATTEMPT_RUNNING' ? true : undefined),
    { what: 'the job running on the new leader' },
  );
  w.fail('sink-0', 'crash');
  const job = await eventually(
    async () => {
      const info = (await c.client.getJob({ jobId: 'job' })).job;
      return info?.state === 'JOB_STATE_QUARANTINED' ? info : undefined;
    },
    { what: 'the job quarantined' },
  );
  t.regex(job.quarantineReason, new RegExp(`checkpoint ${id} cannot be restored`));
  const next = await c.client.triggerCheckpoint({ jobId: 'other', wait: true }, { deadlineMs: 10_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', 'the other job goes on');
  t.truthy(other.welcome);
});
