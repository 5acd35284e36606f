/**
 * A task failure that never reached the coordinator, on real etcd, NATS and
 * coordinator processes. The leader is SIGSTOPped and a task fails at once:
 * the worker writes its failure into the paused leader's stream, where it
 * is lost. A standby takes over and the worker's session resumes in the
 * same epoch. The new leader knows nothing of the failure, and the failed
 * task would decline every trigger for good; the worker reports the
 * failure again in the resumed session, so the job recovers and
 * checkpoints complete again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createCoordinatorClient } from '../../src/client/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, Worker, type SourceTask } from '../../src/sdk/index.js';
import { coordinatorProcesses } from '../helpers/coordinator-processes.js';
import { eventually, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers();

/** A source that idles until `fail()` is called, then fails in the epoch it runs in; later epochs idle. */
function failingSource(): { source: SourceTask<string>; fail: () => void } {
  let fail = (): void => undefined;
  const failed = new Promise<void>((resolve) => (fail = resolve));
  let thrown = false;
  return {
    fail: () => fail(),
    source: {
      async *read(_positions, ctx) {
        const aborted = new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        await Promise.race([failed, aborted]);
        if (!thrown && !ctx.signal.aborted) {
          thrown = true;
          throw new Error('the source fails on purpose');
        }
        await aborted;
        yield* [];
      },
      handle: (message, ctx) => ctx.emit(message.value),
    },
  };
}

test('a failure lost with a paused leader is reported again once the session resumes under the next leader', async (t) => {
  const prefix = uniquePrefix(t);
  const { addresses, children, started } = await coordinatorProcesses(t, servers, prefix, 2);
  children[0]!.start();
  await eventually(() => started.some((s) => s.from === 0), { timeoutMs: 30_000, what: 'coordinator-0 leading' });
  children[1]!.start();

  const client = createCoordinatorClient(addresses);
  t.teardown(() => client.close());
  const spec: JobSpec = { jobId: 'lost-failure', tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }] };
  await client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-lost-failure-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const worker = new Worker({
    coordinator: addresses,
    nats: [servers.natsUrl],
    jobId: 'lost-failure',
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: silentLogger(),
  });
  const { source, fail } = failingSource();
  worker.addTask('src', source);
  worker.addTask('sink', { process: () => undefined });
  t.teardown(() => worker.stop());
  await worker.start();
  await eventually(
    async () => (await client.getJob({ jobId: 'lost-failure' })).job?.attempt === 'JOB_ATTEMPT_RUNNING',
    { timeoutMs: 15_000, what: 'the job running' },
  );
  const before = await client.triggerCheckpoint({ jobId: 'lost-failure', wait: true }, { deadlineMs: 10_000 });
  t.is(before.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const firstTerm = worker.welcome?.term ?? 0;
  const firstEpoch = worker.epoch;

  const welcomed = worker.waitFor('welcome', (welcome) => welcome.term > firstTerm, { timeoutMs: 30_000 });
  const failedTask = worker.waitFor('failed', (f) => f.taskId === 'src', { timeoutMs: 10_000 });
  children[0]!.pause();
  t.teardown(() => children[0]!.resume());
  fail();
  await failedTask;
  const [welcome] = await welcomed;
  t.is(welcome.epoch, firstEpoch, 'the session resumed in the epoch of the failure');
  await worker.waitFor('started', (s) => s.epoch > firstEpoch, { timeoutMs: 20_000 });
  const after = await client.triggerCheckpoint({ jobId: 'lost-failure', wait: true }, { deadlineMs: 15_000 });
  t.is(after.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
});
