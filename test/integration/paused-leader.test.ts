/**
 * A paused leader, on real etcd, NATS and coordinator processes: the leader
 * is SIGSTOPped (its kernel still accepts connections, so the standbys'
 * probe and the workers' TCP see nothing wrong). Its lease expires and a
 * standby takes over; the workers' HTTP/2 keepalive gets no answer, so
 * they drop the silent session and attach to the new leader long before
 * the paused process resumes, and checkpoints complete again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createCoordinatorClient, DEFAULT_KEEPALIVE } from '../../src/client/index.js';
import { DEFAULT_LEASE_TTL_MS } from '../../src/config/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { coordinatorProcesses } from '../helpers/coordinator-processes.js';
import { eventually, uniquePrefix, useServers } from '../helpers/index.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers();

/** How long the leader stays paused: far longer than the lease and the keepalive. */
const PAUSE_MS = 30_000;
/** Room for a loaded machine: an election, a take-over, the attach. */
const SLACK_MS = 4000;

test('workers of a paused leader attach to the new leader within about the lease TTL and the keepalive timeout', async (t) => {
  const prefix = uniquePrefix(t);
  const { addresses, children, started } = await coordinatorProcesses(t, servers, prefix, 2);
  children[0]!.start();
  await eventually(() => started.some((s) => s.from === 0), { timeoutMs: 30_000, what: 'coordinator-0 leading' });
  children[1]!.start();

  const client = createCoordinatorClient(addresses);
  t.teardown(() => client.close());
  const spec: JobSpec = { jobId: 'paused', tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }] };
  await client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-paused-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const worker = new Worker({
    coordinator: addresses,
    nats: [servers.natsUrl],
    jobId: 'paused',
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: silentLogger(),
  });
  worker.addTask('src', fixedSource(20));
  worker.addTask('count', {
    process(record, ctx) {
      ctx.state.set('n', ((ctx.state.get('n') as number | undefined) ?? 0) + 1);
      void record;
    },
  });
  t.teardown(() => worker.stop());
  await worker.start();
  await eventually(async () => (await client.getJob({ jobId: 'paused' })).job?.attempt === 'JOB_ATTEMPT_RUNNING', {
    timeoutMs: 15_000,
  });
  const before = await client.triggerCheckpoint({ jobId: 'paused', wait: true }, { deadlineMs: 10_000 });
  t.is(before.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const firstTerm = worker.welcome?.term ?? 0;
  t.true(firstTerm > 0);
  // coordinator-1 stands by: it has started no coordinator.
  t.false(started.some((s) => s.from === 1));

  const welcomed = worker.waitFor('welcome', (welcome) => welcome.term > firstTerm, { timeoutMs: PAUSE_MS });
  const pausedAt = Date.now();
  children[0]!.pause();
  t.teardown(() => children[0]!.resume());
  const [welcome] = await welcomed;
  const attachedMs = Date.now() - pausedAt;
  const bound = DEFAULT_LEASE_TTL_MS + DEFAULT_KEEPALIVE.timeoutMs + SLACK_MS;
  t.log(`paused leader to the new leader's welcome: ${attachedMs} ms (bound ${bound} ms)`);
  t.true(attachedMs < bound, `${attachedMs} ms`);
  t.true(children[0]!.paused, 'the old leader is still paused');
  t.true(
    started.some((s) => s.from === 1 && s.term === welcome.term),
    'welcomed by coordinator-1',
  );
  // The job checkpoints again under the new leader while the old one is still paused.
  const after = await client.triggerCheckpoint({ jobId: 'paused', wait: true }, { deadlineMs: 15_000 });
  t.is(after.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((after.checkpoint?.checkpointId ?? 0) > (before.checkpoint?.checkpointId ?? 0));
  t.true(Date.now() - pausedAt < PAUSE_MS, 'all before the paused leader would have resumed');
});
