/**
 * A trigger of the worker's epoch that arrives while the epoch's restore
 * still runs is held, and handled once the restore is done (rule R1):
 * the source snapshots that checkpoint instead of declining it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { controlMessageCodecs } from '../../src/bus/index.js';
import { createLocalDirectoryBackend, Worker, type SourceTask } from '../../src/sdk/index.js';
import { natsConnection } from '../helpers/clients.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { fixedSource } from '../helpers/sources.js';
import { eventually } from '../helpers/wait.js';
import { MemoryLog } from './worker-harness.js';

const servers = useServers();

test('a trigger that arrives during the restore is taken once the restore is done', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const jobId = 'held';
  await c.client.submitJob({ spec: { jobId, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }] } });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-held-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let restoring = false;
  const source: SourceTask<string> = {
    ...fixedSource(10),
    async restore() {
      restoring = true;
      await released;
    },
  };
  const log = new MemoryLog('debug');
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: log.logger,
  });
  worker.addTask('src', source);
  worker.addTask('sink', { process() {} });
  t.teardown(() => worker.stop());
  const snapshots: number[] = [];
  const declined: number[] = [];
  worker.on('snapshot', (e) => {
    if (e.taskId === 'src') snapshots.push(e.checkpointId);
  });
  worker.on('checkpoint-declined', (e) => declined.push(e.checkpointId));
  await worker.start();
  await eventually(() => restoring, { what: 'the source restoring' });

  const welcome = worker.welcome;
  if (welcome === undefined) throw new Error('no welcome');
  const checkpointId = welcome.nextCheckpointId;
  const nc = await natsConnection(t, servers.natsUrl);
  const trigger = { jobId, checkpointId, epoch: worker.epoch, term: worker.confirmed.term, triggeredAtMs: Date.now() };
  nc.publish(`${welcome.controlSubjectPrefix}.trigger`, controlMessageCodecs().trigger.encode(trigger));
  await nc.flush();
  const held = (line: { msg?: string; checkpointId?: unknown }): boolean =>
    line.msg === 'trigger held until the restore is done' && line.checkpointId === checkpointId;
  await log.waitFor(held, 10_000).catch((err: unknown) => {
    throw new Error(`the worker did not hold the trigger of checkpoint ${checkpointId} while restoring`, {
      cause: err,
    });
  });
  t.deepEqual(snapshots, [], 'nothing is snapshotted while the restore runs');

  release();
  await eventually(() => snapshots.includes(checkpointId), { what: `a snapshot of checkpoint ${checkpointId}` });
  t.false(declined.includes(checkpointId), 'the held trigger is not declined');
});
