/**
 * The benchmark harness runs end to end: `bench/run.ts --quick` starts its
 * own etcd and NATS, runs every scenario briefly and writes valid rows.
 * The figures themselves are not checked here (`make bench` holds them to
 * their targets); only that every scenario ran and reported what it should.
 *
 * The run loads both cores for most of a minute, which would starve the
 * tests running beside it; so it runs only with CKPT_BENCH_SMOKE=1, which
 * `make test` sets in a second step, after the other tests.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';

/** Rows every scenario must report, by id. */
const EXPECTED = [
  'floor.etcd_txn.p50',
  'floor.nats_rtt.p50',
  'floor.grpc_unary.p50',
  'floor.grpc_stream.rate',
  'checkpoint.latency.n1.p50',
  'checkpoint.latency.n4096.p50',
  'checkpoint.floor.n1024.p50',
  'checkpoint.floor.n1024.p99',
  'ack.intake.rate',
  'ack.intake.calls.rate',
  'ack.intake.batched.bytes_rate',
  'etcd.n1024.write_requests',
  'etcd.n1024.put_bytes',
  'dataplane.records_per_s.bare',
  'dataplane.records_per_s.interval_1000ms',
  'dataplane.records_per_cpu_s.interval_100ms',
  'dataplane.records_per_s.sdk_none_over_bare',
  'dataplane.records_per_s.interval_1000ms_over_none',
  'dataplane.records_per_cpu_s.interval_100ms_over_none',
  'dataplane.coordinator_cpu_per_checkpoint',
  'backpressure.aligned.checkpoint_ms.p50',
  'backpressure.aligned-timeout.checkpoint_ms.p50',
  'backpressure.unaligned.checkpoint_ms.p50',
  'recovery.kill_to_ready.p50',
  'recovery.detection_to_ready.p50',
  'recovery.restart.kill_to_ready.p50',
  'failover.kill_to_commit.p50',
  'failover.kill_to_commit.max',
  'failover.kill_to_elected.p50',
  'state.incremental.upload_ratio',
  'state.full.sync_ms',
  'state.incremental.async_ms',
  'state.restore.ms',
  'state.restore.floor_ms',
  'state.obj.incremental.upload_ratio',
  'state.obj.restore.ms',
  'state.orphans.left',
  'state.retained.missing',
  'state.orphans.stray_bytes',
  'state.orphans.dir.left',
  'state.retained.dir.missing',
  'scale.n2000.latency.p50',
  'scale.n2000.coordinator_rss_peak',
  'scale.n2000.recovery.detection_to_ready.max',
  'scale.n2000.coordinator_cpu_per_checkpoint',
  'scale.jobs16.commit.p99',
  'scale.jobs16.coordinator_cpu_per_checkpoint',
  'groups.p99_ratio',
  'groups.throughput_ratio',
  'groups.three.groups_per_coordinator.max',
];

const smoke = process.env.CKPT_BENCH_SMOKE === '1' ? test : test.skip;

smoke('bench/run.ts --quick runs every scenario and writes valid rows', async (t) => {
  t.timeout(600_000);
  const out = await mkdtemp(join(tmpdir(), 'ckpt-bench-smoke-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('close', (exitCode) => resolve({ code: exitCode, output }));
  });
  // 1: a target missed, which a quick run on a busy machine may; 2 would be a failed scenario.
  t.true(code === 0 || code === 1, `exit ${code}:\n${output.slice(-4000)}`);
  t.notRegex(output, /scenario failed|FAILED/);

  const rows = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as Array<Record<string, unknown>>;
  const ids = rows.map((r) => r.id);
  for (const id of EXPECTED) t.true(ids.includes(id), `row ${id} missing`);
  t.is(new Set(ids).size, ids.length, 'row ids are unique');
  for (const row of rows) {
    t.deepEqual(
      Object.keys(row).sort(),
      ['conditions', 'id', 'met', 'ratio', 'target', 'unit', 'value'],
      String(row.id),
    );
    t.true(typeof row.value === 'number' && Number.isFinite(row.value) && row.value >= 0, `${String(row.id)} value`);
    t.true(typeof row.unit === 'string' && row.unit !== '', `${String(row.id)} unit`);
    t.true(typeof row.conditions === 'string' && row.conditions.length > 20, `${String(row.id)} conditions`);
    t.true(row.target === null || typeof row.target === 'number', `${String(row.id)} target`);
    t.true(row.ratio === null || typeof row.ratio === 'number', `${String(row.id)} ratio`);
    t.is(row.met === null, row.target === null, `${String(row.id)}: met goes with a target`);
    if (typeof row.target === 'number') t.true(typeof row.met === 'boolean', `${String(row.id)} met`);
  }
  const conditionsOf = (id: string): string => String(rows.find((r) => r.id === id)?.conditions);
  t.regex(conditionsOf('floor.etcd_txn.p50'), /single-member etcd \d+\.\d+\.\d+,/, 'the version etcd reports');
  t.regex(conditionsOf('floor.nats_rtt.p50'), /on nats-server \d+\.\d+\.\d+ /, 'the version NATS reports');
  t.regex(conditionsOf('checkpoint.latency.n1.p50'), new RegExp(`all on ${availableParallelism()} cores?`));
  const markdown = await readFile(join(out, 'summary.md'), 'utf8');
  t.regex(markdown, /^\| id \| value \| unit \| target \| ratio \| met \| conditions \|/m);
  t.is(markdown.trim().split('\n').length, rows.length + 2, 'one table line per row');
  t.regex(await readFile(join(out, 'latency.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/);
});
