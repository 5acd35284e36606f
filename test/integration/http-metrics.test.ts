/**
 * The coordinator's HTTP port: Prometheus metrics counted from real
 * checkpoints (completed and declined) and a recovery, with the timings of
 * etcd requests, commits, acknowledgements and worker sessions, checked by
 * `promtool check metrics` and scraped by a real Prometheus; `/healthz`
 * and `/readyz` on a leader and a standby; junk requests answered, never
 * fatal.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import test from 'ava';
import { freePort } from '../../src/dev/free-port.js';
import { resolveConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';
import { runCoordinator } from '../../src/server/run.js';
import { eventually, sample, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();
const run = promisify(execFile);

async function get(
  address: string,
  path: string,
  method = 'GET',
): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(`http://${address}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

test('the leader counts completed, declined and recovered checkpoints and times them in /metrics, which promtool accepts', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('mjob', 2, 1, { tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  const w = await c.worker({ jobId: 'mjob', workerId: 'w0', taskIds: ids, spec });
  await c.started('mjob');
  for (let i = 0; i < 2; i += 1) {
    const res = await c.client.triggerCheckpoint({ jobId: 'mjob', wait: true }, { deadlineMs: 10_000 });
    t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  }
  w.setBehaviour('src-1', 'decline');
  const declined = await c.client.triggerCheckpoint({ jobId: 'mjob', wait: true }, { deadlineMs: 10_000 });
  t.is(declined.checkpoint?.state, 'CHECKPOINT_STATE_ABORTED');
  w.setBehaviour('src-1', 'ack');
  const last = await c.client.triggerCheckpoint({ jobId: 'mjob', wait: true }, { deadlineMs: 10_000 });
  const lastId = last.checkpoint?.checkpointId ?? 0;
  await c.client.restoreJob({ jobId: 'mjob', checkpointId: lastId });
  const address = c.running.httpAddress;
  const metrics = await eventually(
    async () => {
      const m = await get(address, '/metrics');
      return (sample(m.body, 'ckpt_recoveries_total{job_id="mjob"}') ?? 0) >= 1 ? m : undefined;
    },
    { what: 'a recovery counted' },
  );
  t.is(metrics.status, 200);
  t.regex(metrics.type, /^text\/plain; version=0\.0\.4/);
  const text = metrics.body;
  t.is(sample(text, 'ckpt_coordinator_is_leader'), 1);
  t.is(sample(text, 'ckpt_checkpoints_completed_total{job_id="mjob"}'), 3);
  t.is(sample(text, 'ckpt_checkpoints_failed_total{job_id="mjob",reason="declined"}'), 1);
  t.is(sample(text, 'ckpt_checkpoints_triggered_total{job_id="mjob"}'), 4);
  t.is(sample(text, 'ckpt_last_completed_checkpoint_id{job_id="mjob"}'), lastId);
  t.true(
    (sample(text, 'ckpt_last_completed_checkpoint_timestamp_seconds{job_id="mjob"}') ?? 0) > Date.now() / 1000 - 60,
  );
  t.is(sample(text, 'ckpt_checkpoint_duration_seconds_count{job_id="mjob"}'), 3);
  t.is(sample(text, 'ckpt_checkpoint_size_bytes_count{job_id="mjob",kind="state"}'), 3);
  t.regex(text, /^ckpt_build_info\{version="[^"]+",node_version="v\d+[^"]*"\} 1$/m);
  // Timings: one commit per completed checkpoint, one acknowledgement per task the checkpoints recorded.
  t.is(sample(text, 'ckpt_checkpoint_commit_duration_seconds_count{job_id="mjob"}'), 3);
  const summaries = await c.running.coordinator.listCheckpoints('mjob');
  const acknowledged = summaries.reduce((n, s) => n + s.acknowledgedTasks, 0);
  t.true(acknowledged >= 9, `${acknowledged} acknowledgements: three tasks in each of three completed checkpoints`);
  t.is(sample(text, 'ckpt_checkpoint_ack_latency_seconds_count{job_id="mjob"}'), acknowledged);
  t.true((sample(text, 'ckpt_etcd_request_duration_seconds_count{operation="txn"}') ?? 0) > 0);
  t.true((sample(text, 'ckpt_etcd_request_duration_seconds_count{operation="range"}') ?? 0) > 0, 'jobs were listed');
  t.is(sample(text, 'ckpt_etcd_request_failures_total{operation="txn"}'), 0);
  t.is(sample(text, 'ckpt_worker_sessions{job_id="mjob"}'), 1);
  t.is(sample(text, 'ckpt_worker_session_duration_seconds_count{job_id="mjob"}'), undefined, 'no session ended yet');
  // No series is named by a checkpoint id, and no label is `job` (Prometheus's own).
  t.false(/checkpoint_id="/.test(text));
  t.false(/[{,]job="/.test(text));
  const ckpt = text
    .split('\n')
    .filter((l) => l.includes('ckpt_'))
    .join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-metrics-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'metrics.txt'), `${ckpt}\n`);
  const lint = await run('sh', ['-c', `promtool check metrics < ${join(dir, 'metrics.txt')}`]).then(
    (r) => ({ ok: true, out: r.stdout + r.stderr }),
    (err: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
  );
  t.true(lint.ok, `promtool check metrics: ${lint.out}`);
  t.is(lint.out.trim(), '', 'promtool has nothing to say');

  // The worker leaves: its session is no longer open, and how long it lasted is observed.
  await w.close();
  const after = await eventually(
    async () => {
      const m = (await get(address, '/metrics')).body;
      return sample(m, 'ckpt_worker_session_duration_seconds_count{job_id="mjob"}') === 1 ? m : undefined;
    },
    { what: 'the end of the worker session observed' },
  );
  t.is(sample(after, 'ckpt_worker_sessions{job_id="mjob"}'), 0);
  t.true((sample(after, 'ckpt_worker_session_duration_seconds_sum{job_id="mjob"}') ?? 0) > 0);
});

test('after a restart the new leader shows the last completed checkpoint before it commits one', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('rjob', 1, 1, { intervalMs: 60_000 });
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  const w = await c.worker({ jobId: 'rjob', workerId: 'w0', taskIds: ids, spec });
  await c.started('rjob');
  // A periodic checkpoint may be pending (TOO_MANY_PENDING): triggered again until one is taken.
  const res = await eventually(
    () => c.client.triggerCheckpoint({ jobId: 'rjob', wait: true }, { deadlineMs: 10_000 }),
    { timeoutMs: 20_000, pollMs: 200, what: 'a manual checkpoint' },
  );
  const id = res.checkpoint?.checkpointId ?? 0;
  const finishedAt = Number(res.checkpoint?.finishedAtMs ?? 0) / 1000;
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  // Without its worker, the new leader completes nothing: what it shows was read back.
  await w.close();
  await c.restart();
  const text = await eventually(
    async () => {
      const m = (await get(c.running.httpAddress, '/metrics')).body;
      return sample(m, 'ckpt_last_completed_checkpoint_id{job_id="rjob"}') === id ? m : undefined;
    },
    { what: 'the last completed checkpoint read back' },
  );
  t.is(sample(text, 'ckpt_last_completed_checkpoint_timestamp_seconds{job_id="rjob"}'), finishedAt);
  t.is(sample(text, 'ckpt_checkpoint_interval_seconds{job_id="rjob"}'), 60);
  t.is(sample(text, 'ckpt_checkpoints_completed_total{job_id="rjob"}'), undefined, 'this process committed none');
});

test('a real Prometheus scrapes the coordinator', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('pjob', 1, 1);
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  await c.worker({ jobId: 'pjob', workerId: 'w0', taskIds: ids, spec });
  await c.started('pjob');
  const res = await c.client.triggerCheckpoint({ jobId: 'pjob', wait: true }, { deadlineMs: 10_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-prometheus-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = [
    'global:',
    '  scrape_interval: 1s',
    'scrape_configs:',
    '  - job_name: ckpt',
    '    static_configs:',
    `      - targets: ['${c.running.httpAddress}']`,
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), `${config}\n`);
  const port = await freePort();
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  prometheus.stderr?.on('data', (chunk: Buffer) => void (log = (log + chunk.toString()).slice(-4000)));
  t.teardown(() => void prometheus.kill('SIGKILL'));
  const value = await eventually(
    async () => {
      const query = encodeURIComponent('ckpt_checkpoints_completed_total{job="ckpt",job_id="pjob"}');
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${query}`);
      const body = (await r.json()) as { data?: { result?: { value?: [number, string] }[] } };
      const v = body.data?.result?.[0]?.value?.[1];
      return v === undefined ? undefined : Number(v);
    },
    { timeoutMs: 30_000, pollMs: 500, what: `Prometheus to scrape the coordinator (its log: ${log.slice(-500)})` },
  );
  t.is(value, 1);
});

test('/healthz and /readyz say what a leader and a standby are; junk requests get 404 or 405', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const address = c.running.httpAddress;
  t.deepEqual(await get(address, '/healthz'), { status: 200, body: 'ok\n', type: 'text/plain; charset=utf-8' });
  const ready = await get(address, '/readyz');
  t.is(ready.status, 200);
  t.is(ready.body, 'ready: leading\n');
  t.is((await get(address, '/nope')).status, 404);
  t.is((await get(address, '/metrics', 'POST')).status, 405);
  t.is((await get(address, '/metrics?x=%%')).status, 200);
  // A raw request that is not HTTP at all: the connection is dropped, the server lives on.
  const [host, port] = address.split(':');
  await new Promise<void>((resolve) => {
    const socket = connect(Number(port), host, () => socket.end('\u0000\u00ff not http\r\n\r\n'));
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
  t.is((await get(address, '/healthz')).status, 200);

  // A standby on the same prefixes names the leader and counts nothing.
  const standby = await c.standby();
  const standbyReady = await get(standby.httpAddress, '/readyz');
  t.is(standbyReady.status, 200);
  t.regex(standbyReady.body, /^ready: standby; the leader is 127\.0\.0\.1:\d+\n$/);
  const standbyMetrics = (await get(standby.httpAddress, '/metrics')).body;
  t.is(sample(standbyMetrics, 'ckpt_coordinator_is_leader'), 0);
  // Its store's etcd requests are timed; job figures are the leader's alone.
  t.not(sample(standbyMetrics, 'ckpt_etcd_request_duration_seconds_count{operation="txn"}'), undefined);
  t.is(sample(standbyMetrics, 'ckpt_etcd_request_failures_total{operation="txn"}'), 0);
  t.false(
    /^ckpt_(worker_sessions|checkpoint_commit_duration_seconds_count|checkpoint_ack_latency_seconds_count)\{/m.test(
      standbyMetrics,
    ),
  );
});

test('an HTTP address that is taken fails the start with a clear error; the default falls back to a free port', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const taken = c.running.httpAddress;
  const base = {
    etcd: [servers.etcdUrl],
    nats: [servers.natsUrl],
    etcdPrefix: c.prefix.etcd,
    subjectPrefix: c.prefix.nats,
  };
  await t.throwsAsync(
    runCoordinator(resolveConfig({ ...base, listen: '127.0.0.1:0', httpListen: taken }), silentLogger()),
    {
      message: new RegExp(`cannot listen for HTTP on ${taken.replace(/\./g, '\\.')}`),
    },
  );
  // The gRPC port just below the taken one: the default (+1) is taken, a free port is used.
  const grpcPort = Number(taken.split(':')[1]) - 1;
  const other = await runCoordinator(resolveConfig({ ...base, listen: `127.0.0.1:${grpcPort}` }), silentLogger()).catch(
    (err: Error) => err,
  );
  if (other instanceof Error) {
    // The port below was taken by something else: nothing to check then.
    t.regex(other.message, /listen|bind|address/i);
    return;
  }
  t.teardown(() => other.stop());
  t.not(other.httpAddress, taken);
  t.is((await get(other.httpAddress, '/healthz')).status, 200);
});
