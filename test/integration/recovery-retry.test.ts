/**
 * A recovery whose epoch bump etcd does not answer, on real etcd, NATS and
 * gRPC: the coordinator tries the bump again until etcd answers, then the
 * tasks restore. Before, the recovery gave up after one try and left the job
 * in the epoch of its failed task, where it stayed. The proxy delivers what
 * it held once etcd is back, so a bump whose reply was lost may go through
 * after all: the next try then finds the epoch raised, and bumps from it.
 */
import test from 'ava';
import { pino } from 'pino';
import { startTcpProxy } from '../../src/dev/index.js';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

async function commit(c: TestCoordinator): Promise<number> {
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 10_000 });
  if (res.checkpoint?.state !== 'CHECKPOINT_STATE_COMPLETED')
    throw new Error(`checkpoint not completed: ${res.checkpoint?.state}`);
  return res.checkpoint.checkpointId;
}

test('a recovery whose epoch bump etcd did not answer tries again until etcd answers', async (t) => {
  const proxy = await startTcpProxy({ target: new URL(servers.etcdUrl).host });
  t.teardown(() => proxy.close());
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const c = await startTestCoordinator(
    t,
    servers,
    { etcd: [`http://${proxy.address}`], leaseTtlMs: 60_000, etcdTimeoutMs: 1000 },
    { logger },
  );
  const spec = fanInSpec('job', 2, 1, { retained: 1 });
  await c.client.submitJob({ spec });
  const a = await c.worker({ jobId: 'job', workerId: 'a', taskIds: ['src-0', 'src-1'], spec });
  const b = await c.worker({ jobId: 'job', workerId: 'b', taskIds: ['sink-0'], spec });
  await c.started('job');
  const before = await commit(c);

  proxy.pause();
  b.fail('sink-0', 'crashed');
  await eventually(() => lines.some((line) => line.includes('bump epoch failed')), {
    timeoutMs: 30_000,
    what: 'an epoch bump that etcd did not answer',
  });
  proxy.restore();

  // Epoch 2, or 3 when a bump that etcd got before the pause went through
  // unseen: the recovery bumps again from the stored epoch.
  const restored = await eventually(() => a.restored.find((r) => r.epoch >= 2), {
    timeoutMs: 30_000,
    what: 'a restore in a new epoch',
  });
  t.is(restored.checkpointId, before);
  t.false(
    lines.some((line) => line.includes('job recovery failed')),
    'the recovery never gave up',
  );
  await c.started('job');
  t.true((await commit(c)) > before);
});
