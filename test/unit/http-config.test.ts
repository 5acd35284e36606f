import test from 'ava';
import { resolveConfig } from '../../src/config/index.js';
import { CheckpointEvents } from '../../src/coordinator/events.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { CoordinatorMetrics } from '../../src/metrics/coordinator-metrics.js';
import { defaultHttpListen } from '../../src/server/http-server.js';
import { promtoolCheck } from '../helpers/prometheus.js';

test('the HTTP address defaults to the gRPC port + 1, reads the environment and is validated', (t) => {
  t.is(resolveConfig({}, {}).httpListen, undefined);
  t.is(defaultHttpListen('127.0.0.1:7070'), '127.0.0.1:7071');
  t.is(defaultHttpListen('0.0.0.0:0'), '0.0.0.0:0');
  t.is(defaultHttpListen('[::1]:7070'), '[::1]:7071');
  t.is(defaultHttpListen('127.0.0.1:65535'), '127.0.0.1:0');
  t.is(resolveConfig({}, { CKPT_HTTP_LISTEN: '0.0.0.0:9464' }).httpListen, '0.0.0.0:9464');
  t.is(resolveConfig({ httpListen: '' }, {}).httpListen, undefined);
  t.throws(() => resolveConfig({ httpListen: 'metrics' }, {}), { message: /httpListen \(CKPT_HTTP_LISTEN\)/ });
});

test('HTTPS on the HTTP port needs the gRPC certificate; on and off are its only values', (t) => {
  t.is(resolveConfig({}, {}).httpTls, 'off');
  const tls = { tlsCert: 'c.pem', tlsKey: 'k.pem' };
  t.is(resolveConfig(tls, { CKPT_HTTP_TLS: 'on' }).httpTls, 'on');
  t.throws(() => resolveConfig({ httpTls: 'on' }, {}), {
    message: /httpTls \(CKPT_HTTP_TLS\).*needs tlsCert and tlsKey/,
  });
  t.throws(() => resolveConfig(tls, { CKPT_HTTP_TLS: 'yes' }), { message: /must be on or off, got "yes"/ });
});

function summary(over: Partial<CheckpointSummary__Output>): CheckpointSummary__Output {
  return {
    jobId: 'j',
    checkpointId: 1,
    epoch: 1,
    state: 'CHECKPOINT_STATE_PENDING',
    abortReason: 'ABORT_REASON_UNSPECIFIED',
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    manual: false,
    triggeredAtMs: 1_000,
    finishedAtMs: 0,
    totalTasks: 2,
    acknowledgedTasks: 0,
    stateSizeBytes: 0,
    persistedBytes: 0,
    maxAlignmentMs: 0,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 0,
    ...over,
  };
}

test('metrics count each checkpoint once, forget what was pending when detached, and keep ids out of labels', async (t) => {
  let leading = true;
  const metrics = new CoordinatorMetrics({ version: '9.9.9' }, () => leading);
  const events = new CheckpointEvents();
  const detach = metrics.attach(events);
  events.publish(summary({ checkpointId: 7 }));
  events.publish(summary({ checkpointId: 7 }));
  events.publish(summary({ checkpointId: 8 }));
  let text = await metrics.text();
  t.regex(text, /^ckpt_checkpoints_in_progress\{job_id="j"\} 2$/m);
  t.regex(text, /^ckpt_checkpoints_triggered_total\{job_id="j"\} 2$/m, 'a summary published twice is one trigger');
  const done = { finishedAtMs: 3_500, persistedBytes: 4096, stateSizeBytes: 1 << 20 };
  events.publish(summary({ checkpointId: 7, state: 'CHECKPOINT_STATE_COMPLETED', ...done }));
  events.publish(summary({ checkpointId: 8, state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_TIMEOUT' }));
  events.publishRecovery({ jobId: 'j', epoch: 2, checkpointId: 7 });
  events.publish(summary({ checkpointId: 9 }));
  text = await metrics.text();
  t.regex(text, /^ckpt_checkpoints_completed_total\{job_id="j"\} 1$/m);
  t.regex(text, /^ckpt_checkpoints_failed_total\{job_id="j",reason="timeout"\} 1$/m);
  t.regex(text, /^ckpt_checkpoint_duration_seconds_sum\{job_id="j"\} 2\.5$/m);
  t.regex(text, /^ckpt_checkpoint_size_bytes_sum\{job_id="j",kind="persisted"\} 4096$/m);
  t.regex(text, /^ckpt_last_completed_checkpoint_id\{job_id="j"\} 7$/m);
  t.regex(text, /^ckpt_last_completed_checkpoint_timestamp_seconds\{job_id="j"\} 3\.5$/m);
  t.regex(text, /^ckpt_recoveries_total\{job_id="j"\} 1$/m);
  t.regex(text, /^ckpt_checkpoints_in_progress\{job_id="j"\} 1$/m);
  t.regex(text, /^ckpt_build_info\{version="9\.9\.9",node_version="v[^"]+"\} 1$/m);
  t.regex(text, /^ckpt_coordinator_is_leader 1$/m);
  t.false(/checkpoint_id="|[{,]job="/.test(text));
  leading = false;
  detach();
  events.publish(summary({ checkpointId: 10 }));
  text = await metrics.text();
  t.regex(text, /^ckpt_coordinator_is_leader 0$/m);
  t.regex(text, /^ckpt_checkpoints_triggered_total\{job_id="j"\} 3$/m, 'a detached coordinator is not counted');
  t.false(/^ckpt_checkpoints_in_progress\{/m.test(text), 'nothing is pending on a standby');
});

test('the last completed checkpoint read back at a term start shows until a newer one completes; jobs are read when scraped', async (t) => {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => true);
  const events = new CheckpointEvents();
  const detach = metrics.attach(events, () => [
    { jobId: 'a', intervalMs: 30_000, sessions: 2 },
    { jobId: 'b', intervalMs: 0, sessions: 0 },
  ]);
  metrics.knownCompleted(
    summary({ jobId: 'a', checkpointId: 40, state: 'CHECKPOINT_STATE_COMPLETED', finishedAtMs: 9_000 }),
  );
  metrics.knownCompleted(summary({ jobId: 'a', checkpointId: 41, state: 'CHECKPOINT_STATE_ABORTED' }));
  let text = await metrics.text();
  t.regex(text, /^ckpt_last_completed_checkpoint_id\{job_id="a"\} 40$/m);
  t.regex(text, /^ckpt_last_completed_checkpoint_timestamp_seconds\{job_id="a"\} 9$/m);
  t.regex(text, /^ckpt_checkpoint_interval_seconds\{job_id="a"\} 30$/m);
  t.regex(text, /^ckpt_checkpoint_interval_seconds\{job_id="b"\} 0$/m);
  t.regex(text, /^ckpt_worker_sessions\{job_id="a"\} 2$/m);
  t.regex(text, /^ckpt_worker_sessions\{job_id="b"\} 0$/m);
  events.publish(summary({ jobId: 'a', checkpointId: 42, state: 'CHECKPOINT_STATE_COMPLETED', finishedAtMs: 12_000 }));
  // Read back late, an older one does not hide the newer commit.
  metrics.knownCompleted(
    summary({ jobId: 'a', checkpointId: 40, state: 'CHECKPOINT_STATE_COMPLETED', finishedAtMs: 9_000 }),
  );
  text = await metrics.text();
  t.regex(text, /^ckpt_last_completed_checkpoint_id\{job_id="a"\} 42$/m);
  t.regex(text, /^ckpt_last_completed_checkpoint_timestamp_seconds\{job_id="a"\} 12$/m);
  detach();
  text = await metrics.text();
  t.false(/^ckpt_last_completed_checkpoint_id\{/m.test(text), 'a standby reports no job');
  t.false(/^ckpt_checkpoint_interval_seconds\{/m.test(text));
  t.false(/^ckpt_worker_sessions\{/m.test(text));
});

test('each job group says whether this process leads it; the unlabelled gauge says whether it leads any; promtool agrees', async (t) => {
  let led = [false, true, false];
  const metrics = new CoordinatorMetrics(
    { version: '1' },
    () => led.some((l) => l),
    () => led,
  );
  let text = await metrics.text();
  t.regex(text, /^ckpt_coordinator_is_leader 1$/m);
  t.regex(text, /^ckpt_job_group_is_leader\{job_group="0"\} 0$/m);
  t.regex(text, /^ckpt_job_group_is_leader\{job_group="1"\} 1$/m);
  t.regex(text, /^ckpt_job_group_is_leader\{job_group="2"\} 0$/m);
  const lint = await promtoolCheck(text, 'ckpt_');
  t.true(lint.ok, `promtool check metrics: ${lint.out}`);
  t.is(lint.out.trim(), '');
  led = [false, false, false];
  text = await metrics.text();
  t.regex(text, /^ckpt_coordinator_is_leader 0$/m);
  t.regex(text, /^ckpt_job_group_is_leader\{job_group="1"\} 0$/m);
  // One group: its series follows the unlabelled one.
  const single = await new CoordinatorMetrics({ version: '1' }, () => true).text();
  t.regex(single, /^ckpt_job_group_is_leader\{job_group="0"\} 1$/m);
});
