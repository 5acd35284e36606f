/**
 * A task declines one checkpoint by throwing `CheckpointDeclinedError`
 * from its snapshot hook: the checkpoint aborts as DECLINED, the task goes
 * on in its epoch, and the next checkpoint completes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { silentLogger } from '../../src/log/index.js';
import { CheckpointDeclinedError, createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers();

test('a snapshot hook throwing CheckpointDeclinedError declines without failing the task', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const jobId = 'declines';
  const spec = {
    jobId,
    tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
    policy: { tolerableFailures: -1 },
  };
  await c.client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-decline-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let declineNext = true;
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: silentLogger(),
  });
  worker.addTask('src', fixedSource(10));
  worker.addTask('sink', {
    process() {},
    snapshot() {
      if (!declineNext) return new Uint8Array([1]);
      declineNext = false;
      throw new CheckpointDeclinedError('not now');
    },
    restore() {},
  });
  t.teardown(() => worker.stop());
  await worker.start();
  await c.started(jobId);
  const epoch = worker.epoch;

  const first = await c.client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: 20_000 });
  t.is(first.checkpoint?.state, 'CHECKPOINT_STATE_ABORTED');
  t.is(first.checkpoint?.abortReason, 'ABORT_REASON_DECLINED');
  t.regex(first.checkpoint?.abortMessage ?? '', /not now/);
  const second = await c.client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: 20_000 });
  t.is(second.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.is(worker.epoch, epoch, 'no recovery followed the decline');
});
