/**
 * A standby SDK worker heartbeats while it waits for its welcome: the
 * coordinator ends a silent standby after its standby timeout, and keeps
 * one that heartbeats for as long as the tasks run elsewhere.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, MemoryLog, tickingSource } from './worker-harness.js';

const servers = useServers();

const STANDBY_TIMEOUT_MS = 2000;

test('a standby waiting longer than the standby timeout is kept, and takes over when the tasks are free', async (t) => {
  const coordinatorLog = new MemoryLog('info');
  const c = await startTestCoordinator(
    t,
    servers,
    { standbyTimeoutMs: STANDBY_TIMEOUT_MS },
    { logger: coordinatorLog.logger },
  );
  const policy = { intervalMs: 300, tolerableFailures: -1 };
  await c.client.submitJob({
    spec: { jobId: 'job', tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }], policy },
  });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-standby-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  const worker = (workerId: string, standby: boolean): Worker => {
    const w = new Worker({ coordinator: c.address, nats: [servers.natsUrl], jobId: 'job', workerId, state, standby });
    w.addTask('src', tickingSource(10)).addTask('sink', countingSink([]));
    t.teardown(() => w.stop());
    return w;
  };
  const primary = worker('primary', false);
  await primary.start();
  await c.started('job');
  const standby = worker('standby', true);
  const started = standby.start();
  // Awaited below; a test that fails before must not leave its rejection unhandled.
  started.catch(() => {});
  await eventually(() => c.running.coordinator.waitingStandbys('job') === 1, { what: 'the standby waiting' });

  // Three standby timeouts pass, counted in the primary's checkpoints.
  let completed = 0;
  primary.on('complete', () => (completed += 1));
  await eventually(() => completed >= (3 * STANDBY_TIMEOUT_MS) / policy.intervalMs, {
    timeoutMs: 30_000,
    what: 'three standby timeouts of checkpoints',
  });
  t.is(
    coordinatorLog.count((l) => l.msg === 'silent standby ended'),
    0,
    'the standby was never silent',
  );
  t.is(c.running.coordinator.waitingStandbys('job'), 1);
  t.is(standby.state, 'starting', 'still waiting for its welcome');

  const restored = standby.waitFor('restored', () => true, { timeoutMs: 20_000 });
  await primary.stop();
  await started;
  const [event] = await restored;
  t.deepEqual([...event.taskIds].sort(), ['sink', 'src']);
  await c.started('job');
  await standby.waitFor('complete', () => true, { timeoutMs: 20_000 });
});
