/**
 * A worker's own metrics against the real coordinator on real etcd and
 * NATS: a small job runs with metrics on, completes a checkpoint, and each
 * worker's `/metrics` shows its tasks' records, acknowledgements and
 * snapshot figures, which promtool accepts; a bad or taken metrics
 * address fails the worker's construction or start, not later.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Registry } from 'prom-client';
import { CkptError } from '../../src/core/errors.js';
import { createLocalDirectoryBackend, Worker, type StateBackend, type WorkerOptions } from '../../src/sdk/index.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { httpGet, promtoolCheck, sample } from '../helpers/prometheus.js';
import { useServers } from '../helpers/servers.js';
import { fixedSource } from '../helpers/sources.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();
const RECORDS = 50;

/** A state backend in a temporary directory, removed when the test ends. */
async function stateDir(t: ExecutionContext): Promise<StateBackend> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-worker-metrics-'));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  t.teardown(async () => {
    await state.close();
    await rm(dir, { recursive: true, force: true });
  });
  return state;
}

/** A worker of `jobId` on the test's coordinator, stopped when the test ends. */
function newWorker(
  t: ExecutionContext,
  c: TestCoordinator,
  state: StateBackend,
  options: Partial<WorkerOptions> & { jobId: string; workerId: string },
): Worker {
  const worker = new Worker({ coordinator: c.address, nats: [servers.natsUrl], state, ...options });
  t.teardown(() => worker.stop());
  return worker;
}

test('a worker serves its tasks’ records, acknowledgements and snapshot figures at /metrics', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const jobId = 'wm';
  await c.client.submitJob({ spec: { jobId, tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }] } });
  const state = await stateDir(t);
  const listen = '127.0.0.1:0';
  const sources = newWorker(t, c, state, { jobId, workerId: 'w-src', metrics: { listen } });
  sources.addTask('src', fixedSource(RECORDS));
  const registry = new Registry();
  const counter = newWorker(t, c, state, { jobId, workerId: 'w-count', metrics: { listen, registry } });
  let processed = 0;
  counter.addTask('count', {
    process(record, ctx) {
      processed += 1;
      ctx.state.set(record.text(), ((ctx.state.get(record.text()) as number | undefined) ?? 0) + 1);
    },
  });
  t.is(counter.metricsAddress, undefined, 'nothing is served before start()');
  await Promise.all([sources.start(), counter.start()]);
  await c.started(jobId);
  await eventually(() => processed === RECORDS, { what: 'every record counted' });
  const done = await c.client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: 20_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');

  const series = (name: string, task: string, extra = ''): string =>
    `${name}{job_id="${jobId}",task_id="${task}"${extra}}`;
  /** The worker's metrics once its task's acknowledgement was accepted. */
  const acknowledged = (w: Worker, task: string): Promise<string> =>
    eventually(
      async () => {
        const got = await httpGet(w.metricsAddress ?? '', '/metrics');
        t.is(got.status, 200);
        return sample(got.body, series('ckpt_worker_checkpoints_acknowledged_total', task)) === 1
          ? got.body
          : undefined;
      },
      { what: `the acknowledgement of ${task} counted` },
    );
  const src = await acknowledged(sources, 'src');
  const count = await acknowledged(counter, 'count');

  t.is(sample(src, series('ckpt_worker_records_in_total', 'src')), RECORDS, 'the source handled every message');
  t.is(sample(src, series('ckpt_worker_records_out_total', 'src')), RECORDS);
  t.is(sample(count, series('ckpt_worker_records_in_total', 'count')), RECORDS);
  t.is(sample(count, series('ckpt_worker_records_out_total', 'count')), 0);
  for (const [text, task] of [
    [src, 'src'],
    [count, 'count'],
  ] as const) {
    t.is(sample(text, series('ckpt_worker_checkpoints_declined_total', task)), 0);
    t.is(sample(text, series('ckpt_worker_restores_total', task)), 0, 'the job started from empty state');
    for (const name of ['alignment', 'snapshot_sync', 'snapshot_async', 'checkpoint_start_delay']) {
      t.is(sample(text, series(`ckpt_worker_${name}_seconds_count`, task)), 1, `${name} of ${task}`);
      const sum = sample(text, series(`ckpt_worker_${name}_seconds_sum`, task)) ?? -1;
      t.true(sum >= 0 && sum < 10, `${name} of ${task} is plausible: ${sum} s`);
    }
    t.is(sample(text, series('ckpt_worker_snapshot_size_bytes_count', task, ',kind="state"')), 1);
    t.false(/checkpoint_id="|[{,]job="/.test(text), 'no checkpoint id and no `job` label');
    const lint = await promtoolCheck(text, 'ckpt_');
    t.true(lint.ok, `promtool check metrics: ${lint.out}`);
    t.is(lint.out.trim(), '', 'promtool has nothing to say');
  }
  t.true((sample(count, series('ckpt_worker_snapshot_size_bytes_sum', 'count', ',kind="state"')) ?? 0) > 0);
  t.true((sample(count, series('ckpt_worker_snapshot_size_bytes_sum', 'count', ',kind="persisted"')) ?? 0) > 0);
  t.is(
    sample(await registry.metrics(), series('ckpt_worker_records_in_total', 'count')),
    RECORDS,
    'the caller’s registry has them too',
  );
  t.false(count.includes('task_id="src"'), 'a worker shows only its own tasks');

  const address = counter.metricsAddress ?? '';
  await counter.stop();
  await t.throwsAsync(httpGet(address, '/metrics'), undefined, 'stopping the worker closes its endpoint');
  t.false((await registry.metrics()).includes('task_id="count"'), 'and removes its series from the registry');
});

test('a bad metrics address fails the construction; a taken one fails start(), which leaves nothing open', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const jobId = 'wm-bad';
  await c.client.submitJob({ spec: { jobId, tasks: [{ taskId: 'src' }] } });
  const state = await stateDir(t);
  const bad = t.throws(() => newWorker(t, c, state, { jobId, workerId: 'w-bad', metrics: { listen: 'localhost' } }));
  t.true(bad instanceof CkptError);
  t.regex(bad?.message ?? '', /metrics\.listen: must be host:port/);

  // A port something else holds.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const taken = `127.0.0.1:${(holder.address() as AddressInfo).port}`;
  const worker = newWorker(t, c, state, { jobId, workerId: 'w-2', metrics: { listen: taken } });
  worker.addTask('src', fixedSource(1));
  const error = await t.throwsAsync(worker.start());
  t.true(error instanceof CkptError);
  t.regex(error?.message ?? '', new RegExp(`cannot listen for HTTP on ${taken.replace(/\./g, '\\.')}`));
  t.is(worker.state, 'stopped');
  t.is(worker.metricsAddress, undefined);
});
