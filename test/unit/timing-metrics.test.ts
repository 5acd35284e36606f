import test from 'ava';
import { SessionRegistry } from '../../src/coordinator/sessions.js';
import { CoordinatorMetrics } from '../../src/metrics/coordinator-metrics.js';
import { sample } from '../helpers/metrics-text.js';

test('every etcd request kind shows from the start, on a standby too, with no failure', async (t) => {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => false);
  const text = await metrics.text();
  for (const operation of ['txn', 'get', 'put', 'range']) {
    t.is(sample(text, `ckpt_etcd_request_duration_seconds_count{operation="${operation}"}`), 0);
    t.is(sample(text, `ckpt_etcd_request_failures_total{operation="${operation}"}`), 0);
  }
  t.false(/operation="delete"/.test(text), 'the store deletes only inside transactions');
});

test('etcd requests are timed by kind in seconds and failures counted', async (t) => {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => true);
  metrics.timings.request('txn', 3, false);
  metrics.timings.request('txn', 40, false);
  metrics.timings.request('txn', 6_000, true);
  metrics.timings.request('get', 0.5, false);
  const text = await metrics.text();
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_count{operation="txn"}'), 3);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_sum{operation="txn"}'), 6.043);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_bucket{le="0.005",operation="txn"}'), 1);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_bucket{le="0.05",operation="txn"}'), 2);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_bucket{le="+Inf",operation="txn"}'), 3);
  t.is(sample(text, 'ckpt_etcd_request_failures_total{operation="txn"}'), 1);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_count{operation="get"}'), 1);
  t.is(sample(text, 'ckpt_etcd_request_failures_total{operation="get"}'), 0);
});

test('acknowledgements count once per task; commits and session ends once each, per job', async (t) => {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => true);
  const timings = metrics.timings;
  timings.acknowledged('j', 3, 250);
  timings.acknowledged('j', 1, 1_500);
  timings.acknowledged('k', 0, 10);
  timings.committed('j', 20);
  timings.sessionEnded('j', 90_000);
  const text = await metrics.text();
  t.is(sample(text, 'ckpt_checkpoint_ack_latency_seconds_count{job_id="j"}'), 4);
  t.is(sample(text, 'ckpt_checkpoint_ack_latency_seconds_sum{job_id="j"}'), 2.25);
  t.is(sample(text, 'ckpt_checkpoint_ack_latency_seconds_bucket{le="0.25",job_id="j"}'), 3);
  t.is(sample(text, 'ckpt_checkpoint_ack_latency_seconds_count{job_id="k"}'), undefined, 'no task, no series');
  t.is(sample(text, 'ckpt_checkpoint_commit_duration_seconds_count{job_id="j"}'), 1);
  t.is(sample(text, 'ckpt_checkpoint_commit_duration_seconds_sum{job_id="j"}'), 0.02);
  t.is(sample(text, 'ckpt_worker_session_duration_seconds_count{job_id="j"}'), 1);
  t.is(sample(text, 'ckpt_worker_session_duration_seconds_bucket{le="60",job_id="j"}'), 0);
  t.is(sample(text, 'ckpt_worker_session_duration_seconds_bucket{le="300",job_id="j"}'), 1);
  t.false(/[{,]job="/.test(text));
});

test('a clock that went backwards, or no number, is observed as 0 and never throws', async (t) => {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => true);
  t.notThrows(() => {
    metrics.timings.committed('j', -5);
    metrics.timings.committed('j', Number.NaN);
    metrics.timings.request('put', Number.POSITIVE_INFINITY, false);
  });
  const text = await metrics.text();
  t.is(sample(text, 'ckpt_checkpoint_commit_duration_seconds_sum{job_id="j"}'), 0);
  t.is(sample(text, 'ckpt_checkpoint_commit_duration_seconds_count{job_id="j"}'), 2);
  t.is(sample(text, 'ckpt_etcd_request_duration_seconds_sum{operation="put"}'), 0);
});

test('the session registry counts live sessions per job and keeps when each opened', (t) => {
  const registry = new SessionRegistry();
  const channel = { send: () => undefined, end: () => undefined };
  const a = registry.add({ workerId: 'w1', jobId: 'a', taskIds: ['t1'], channel, nowMs: 1_000 });
  registry.add({ workerId: 'w2', jobId: 'a', taskIds: ['t2'], channel, nowMs: 2_000 });
  registry.add({ workerId: 'w1', jobId: 'b', taskIds: ['t1'], channel, nowMs: 3_000 });
  t.is(a.openedAtMs, 1_000);
  t.deepEqual(
    registry.countByJob(),
    new Map([
      ['a', 2],
      ['b', 1],
    ]),
  );
  registry.remove(a.sessionId);
  t.deepEqual(
    registry.countByJob(),
    new Map([
      ['a', 1],
      ['b', 1],
    ]),
  );
});
