import test from 'ava';
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { CkptError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/log/index.js';
import { resolveWorkerOptions, type StateBackend, type WorkerEventMap } from '../../src/sdk/index.js';
import { WorkerMetrics } from '../../src/sdk/worker-metrics.js';
import { httpGet, promtoolCheck, sample, sendJunk } from '../helpers/prometheus.js';

const base = {
  coordinator: '127.0.0.1:1',
  nats: ['nats://127.0.0.1:1'],
  jobId: 'j',
  state: {} as StateBackend,
};

test('metrics options: a registry, a listen address or both; errors name the option', (t) => {
  t.is(resolveWorkerOptions(base).metrics, undefined, 'off by default');
  const registry = new Registry();
  t.deepEqual(resolveWorkerOptions({ ...base, metrics: { registry } }).metrics, { registry, listen: undefined });
  t.deepEqual(resolveWorkerOptions({ ...base, metrics: { listen: '127.0.0.1:0' } }).metrics, {
    registry: undefined,
    listen: '127.0.0.1:0',
  });
  t.like(resolveWorkerOptions({ ...base, metrics: { listen: '[::1]:9464', registry } }).metrics, {
    listen: '[::1]:9464',
  });
  const refused = (metrics: unknown, message: RegExp): void => {
    const error = t.throws(() =>
      resolveWorkerOptions({ ...base, metrics } as Parameters<typeof resolveWorkerOptions>[0]),
    );
    t.true(error instanceof CkptError);
    t.regex(error?.message ?? '', message);
  };
  refused({}, /^MALFORMED: metrics: give a registry, a listen address or both/);
  refused('127.0.0.1:0', /^MALFORMED: metrics: must be an object/);
  refused(null, /^MALFORMED: metrics: must be an object/);
  refused({ listen: 'localhost' }, /^MALFORMED: metrics\.listen: must be host:port .*got "localhost"/);
  refused({ listen: '127.0.0.1:65536' }, /^MALFORMED: metrics\.listen: must be host:port/);
  refused({ listen: '127.0.0.1:http' }, /^MALFORMED: metrics\.listen: must be host:port/);
  refused({ listen: 9464 }, /^MALFORMED: metrics\.listen: must be host:port .*got a number/);
  refused({ registry: {} }, /^MALFORMED: metrics\.registry: must be a prom-client Registry/);
});

/** Metrics of a worker of job `jobId` with tasks `taskIds`, and the events they count. */
async function metricsOf(
  t: { teardown(fn: () => unknown): void },
  registry: Registry,
  jobId: string,
  taskIds: string[],
): Promise<{ metrics: WorkerMetrics; events: EventEmitter<WorkerEventMap> }> {
  const events = new EventEmitter<WorkerEventMap>();
  const metrics = await WorkerMetrics.start(
    { registry, listen: undefined },
    { jobId, taskIds, events, logger: silentLogger() },
  );
  t.teardown(() => metrics.close());
  return { metrics, events };
}

test('counters move with records, acknowledgements, declines and restores; histograms with the acknowledged figures', async (t) => {
  const registry = new Registry();
  const { metrics, events } = await metricsOf(t, registry, 'j', ['src', 'm']);
  const series = (name: string, task: string, extra = ''): string => `${name}{job_id="j",task_id="${task}"${extra}}`;
  let text = await registry.metrics();
  t.is(sample(text, series('ckpt_worker_records_in_total', 'm')), 0, 'every series is there from the start');
  t.is(sample(text, series('ckpt_worker_checkpoints_acknowledged_total', 'm')), 0);
  t.is(sample(text, series('ckpt_worker_alignment_seconds_count', 'm')), 0);

  const m = metrics.counts('m');
  const src = metrics.counts('src');
  if (m === undefined || src === undefined) return t.fail('no counts');
  src.recordsIn += 5;
  src.recordsOut += 5;
  m.recordsIn += 3;
  t.is(metrics.counts('other'), undefined);
  const snapshot = {
    taskId: 'm',
    metrics: {
      alignmentMs: 250,
      syncMs: 2,
      asyncMs: 40,
      startDelayMs: 1500,
      stateSizeBytes: 4096,
      persistedBytes: 1024,
    },
  };
  const call = { checkpointId: 4, epoch: 1 };
  events.emit('checkpoint-acked', { ...call, taskIds: ['m'], snapshots: [snapshot], response: {} as never });
  events.emit('checkpoint-acked', { ...call, taskIds: ['x'], snapshots: [{ taskId: 'x' }], response: {} as never });
  events.emit('checkpoint-declined', { ...call, checkpointId: 5, taskIds: ['src'], messages: ['no'] });
  events.emit('restored', { epoch: 2, checkpointId: 0, taskIds: ['src', 'm'] });
  events.emit('restored', { epoch: 3, checkpointId: 4, taskIds: ['src', 'm'] });

  text = await registry.metrics();
  t.is(sample(text, series('ckpt_worker_records_in_total', 'src')), 5);
  t.is(sample(text, series('ckpt_worker_records_out_total', 'src')), 5);
  t.is(sample(text, series('ckpt_worker_records_in_total', 'm')), 3);
  t.is(sample(text, series('ckpt_worker_records_out_total', 'm')), 0);
  t.is(sample(text, series('ckpt_worker_checkpoints_acknowledged_total', 'm')), 1);
  t.is(sample(text, series('ckpt_worker_checkpoints_acknowledged_total', 'src')), 0);
  t.is(sample(text, series('ckpt_worker_checkpoints_declined_total', 'src')), 1);
  t.is(sample(text, series('ckpt_worker_restores_total', 'm')), 1, 'a start from empty state restores nothing');
  t.is(sample(text, series('ckpt_worker_alignment_seconds_sum', 'm')), 0.25);
  t.is(sample(text, 'ckpt_worker_alignment_seconds_bucket{le="0.1",job_id="j",task_id="m"}'), 0);
  t.is(sample(text, 'ckpt_worker_alignment_seconds_bucket{le="0.25",job_id="j",task_id="m"}'), 1);
  t.is(sample(text, series('ckpt_worker_snapshot_sync_seconds_sum', 'm')), 0.002);
  t.is(sample(text, series('ckpt_worker_snapshot_async_seconds_sum', 'm')), 0.04);
  t.is(sample(text, series('ckpt_worker_checkpoint_start_delay_seconds_sum', 'm')), 1.5);
  t.is(sample(text, series('ckpt_worker_snapshot_size_bytes_sum', 'm', ',kind="state"')), 4096);
  t.is(sample(text, series('ckpt_worker_snapshot_size_bytes_sum', 'm', ',kind="persisted"')), 1024);
  t.false(/task_id="x"/.test(text), 'a task of another worker is not counted');
  t.false(/checkpoint_id="|[{,]job="/.test(text), 'no checkpoint id and no `job` label');
  const lint = await promtoolCheck(text, 'ckpt_');
  t.true(lint.ok, `promtool check metrics: ${lint.out}`);
  t.is(lint.out.trim(), '');
});

test('workers share a registry; closing one removes only its series', async (t) => {
  const registry = new Registry();
  const a = await metricsOf(t, registry, 'a', ['t']);
  const b = await metricsOf(t, registry, 'b', ['t']);
  const ca = a.metrics.counts('t');
  const cb = b.metrics.counts('t');
  if (ca === undefined || cb === undefined) return t.fail('no counts');
  ca.recordsIn = 2;
  cb.recordsIn = 7;
  let text = await registry.metrics();
  t.is(sample(text, 'ckpt_worker_records_in_total{job_id="a",task_id="t"}'), 2);
  t.is(sample(text, 'ckpt_worker_records_in_total{job_id="b",task_id="t"}'), 7);
  await a.metrics.close();
  a.events.emit('restored', { epoch: 2, checkpointId: 4, taskIds: ['t'] });
  text = await registry.metrics();
  t.false(text.includes('job_id="a"'), 'the closed worker is gone');
  t.is(sample(text, 'ckpt_worker_records_in_total{job_id="b",task_id="t"}'), 7);
  t.is(sample(text, 'ckpt_worker_restores_total{job_id="b",task_id="t"}'), 0);
});

test('the metrics endpoint serves GET /metrics, 404 and 405 otherwise, survives junk, and closes', async (t) => {
  const events = new EventEmitter<WorkerEventMap>();
  const deps = { jobId: 'j', taskIds: ['t'], events, logger: silentLogger() };
  const metrics = await WorkerMetrics.start({ registry: undefined, listen: '127.0.0.1:0' }, deps);
  t.teardown(() => metrics.close());
  const address = metrics.address ?? '';
  t.regex(address, /^127\.0\.0\.1:\d+$/);
  const counts = metrics.counts('t');
  if (counts !== undefined) counts.recordsOut = 9;
  const got = await httpGet(address, '/metrics');
  t.is(got.status, 200);
  t.regex(got.type, /^text\/plain; version=0\.0\.4/);
  t.is(sample(got.body, 'ckpt_worker_records_out_total{job_id="j",task_id="t"}'), 9);
  t.is((await httpGet(address, '/metrics?x=%%')).status, 200);
  t.is((await httpGet(address, '/')).status, 404);
  t.is((await httpGet(address, '/constructor')).status, 404);
  t.is((await httpGet(address, '/metrics', 'POST')).status, 405);
  await sendJunk(address);
  t.is((await httpGet(address, '/metrics')).status, 200, 'junk did not end the endpoint');

  // An address already bound: the start fails with a clear error.
  const taken = WorkerMetrics.start({ registry: undefined, listen: address }, deps);
  const error = await t.throwsAsync(taken);
  t.true(error instanceof CkptError);
  t.regex(error?.message ?? '', new RegExp(`cannot listen for HTTP on ${address.replace(/\./g, '\\.')}`));

  await metrics.close();
  await t.throwsAsync(httpGet(address, '/metrics'), undefined, 'closed');
  t.is(events.listenerCount('checkpoint-acked'), 0, 'no listener left behind');
});
