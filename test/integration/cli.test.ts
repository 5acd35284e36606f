/**
 * The `ckpt` command line as a user runs it: a coordinator process
 * configured by flags and environment, client commands against it, and a
 * graceful shutdown on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { freePort } from '../../src/dev/index.js';
import { assertRefused, CLI, ckpt, tableRows } from '../helpers/cli.js';
import { eventually, uniquePrefix, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

test('ckpt coordinator serves the CLI and stops gracefully on SIGTERM', async (t) => {
  const prefix = uniquePrefix(t);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const child = spawn(
    'node',
    [...CLI, 'coordinator', '--etcd', servers.etcdUrl, '--nats', servers.natsUrl, '--etcd-prefix', prefix.etcd],
    {
      env: { ...process.env, CKPT_LISTEN: address, CKPT_SUBJECT_PREFIX: prefix.nats, CKPT_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  child.stderr.on('data', (b: Buffer) => (log += b.toString()));
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await eventually(() => log.includes('gRPC server listening'), {
    timeoutMs: 60_000,
    what: `the coordinator to listen (log: ${log.slice(-500)})`,
  });
  t.true(
    log
      .split('\n')
      .filter(Boolean)
      .every((line) => typeof JSON.parse(line) === 'object'),
    'structured log lines',
  );

  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const specFile = join(dir, 'job.json');
  await writeFile(
    specFile,
    JSON.stringify({
      jobId: 'orders',
      tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
      policy: { retained: 2, intervalMs: 30_000, adaptive: { minIntervalMs: 5000, budgetPermille: 50 } },
    }),
  );
  const submitted = await ckpt(address, 'submit', specFile);
  t.is(submitted.code, 0, submitted.stderr);
  t.regex(submitted.stdout, /submitted: orders/);

  const jobs = await ckpt(address, '--json', 'jobs');
  const listed = JSON.parse(jobs.stdout) as Array<{ spec: { jobId: string }; state: string; epoch: number }>;
  t.deepEqual(
    listed.map((j) => [j.spec.jobId, j.state, j.epoch]),
    [['orders', 'JOB_STATE_RUNNING', 1]],
  );
  const shown = (await ckpt(address, 'job', 'orders')).stdout;
  t.regex(shown, /orders\s+RUNNING\s+2\s+0\s+1/);
  t.regex(
    shown,
    /^interval: 30000 ms\nwhy: no checkpoint completed yet: base interval 30000 ms$/m,
    'adaptive policy from JSON',
  );

  const refused = await ckpt(address, 'trigger', 'orders');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /TASKS_NOT_READY/);
  t.regex((await ckpt(address, 'job', 'nope')).stderr, /UNKNOWN_JOB/);
  const gc = await ckpt(address, 'gc', '--dry-run', 'orders');
  t.is(gc.code, 0, gc.stderr);
  t.regex(
    gc.stdout,
    /^would delete 0 state pieces of job orders \(0 orphans, 0 subsumed, 0 of the canceled job; 0 B\)/,
  );
  t.regex((await ckpt(address, 'gc', 'nope')).stderr, /UNKNOWN_JOB/);

  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  t.is(code, 0);
  t.regex(log, /"msg":"shutting down"/);
  t.regex(log, /"msg":"coordinator stopped"/);
});

test('ckpt coordinator refuses a bad option naming it', async (t) => {
  const res = await ckpt('127.0.0.1:1', 'coordinator', '--etcd-prefix', 'no-slash', '--etcd', servers.etcdUrl);
  t.is(res.code, 1);
  t.regex(res.stderr, /etcdPrefix \(CKPT_ETCD_PREFIX\) must end with "\/"/);
});

test('ckpt restore rolls a job back to a retained checkpoint and prints the new epoch', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('orders', 1, 1, { retained: 2 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'orders', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('orders');
  const ids: number[] = [];
  for (let i = 0; i < 2; i++) {
    const done = await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 });
    ids.push(done.checkpoint?.checkpointId ?? 0);
  }
  const [older, latest] = ids as [number, number];

  const restored = await ckpt(c.address, 'restore', 'orders', '--checkpoint', String(older));
  t.is(restored.code, 0, restored.stderr);
  t.is(restored.stdout.trim(), `restored: orders from checkpoint ${older} in epoch 2`);
  t.is((await eventually(() => w.restored.find((r) => r.epoch === 2))).checkpointId, older);
  await c.started('orders');
  const row = (await ckpt(c.address, 'job', 'orders')).stdout.trim().split('\n')[1] ?? '';
  t.deepEqual(row.split(/\s+/).slice(-3), [String(latest), 'CHECKPOINTED', String(older)], 'latest and restore point');

  const json = await ckpt(c.address, '--json', 'restore', 'orders');
  t.deepEqual(JSON.parse(json.stdout), { epoch: 3, checkpointId: latest });

  const before = await c.dump();
  const unknown = await ckpt(c.address, 'restore', 'orders', '--checkpoint', String(latest + 1000));
  t.is(unknown.code, 1);
  t.regex(
    unknown.stderr,
    new RegExp(`^ckpt: UNKNOWN_CHECKPOINT: .*retained: ${older}, ${latest} \\(UNKNOWN_CHECKPOINT\\)`),
  );
  const malformed = await ckpt(c.address, 'restore', 'orders', '--checkpoint', 'newest');
  t.not(malformed.code, 0);
  t.regex(malformed.stderr, /expected a checkpoint id \(a non-negative integer\), got "newest"/);
  t.deepEqual(await c.dump(), before);
});

test('ckpt submit says whether it created the job, as text and JSON; jobs and gc print it', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const specFile = join(dir, 'job.json');
  await writeFile(specFile, JSON.stringify(fanInSpec('orders', 2, 1)));
  const submitted = await ckpt(c.address, '--json', 'submit', specFile);
  t.is(submitted.code, 0, submitted.stderr);
  t.like(JSON.parse(submitted.stdout), {
    created: true,
    job: { spec: { jobId: 'orders' }, state: 'JOB_STATE_RUNNING' },
  });
  const [again, jobs, gc] = await Promise.all([
    ckpt(c.address, 'submit', specFile),
    ckpt(c.address, 'jobs'),
    ckpt(c.address, '--json', 'gc', '--dry-run', 'orders'),
  ]);
  t.is(again.stdout, 'already registered: orders\n');
  t.deepEqual(tableRows(jobs.stdout), [
    {
      JOB: 'orders',
      STATE: 'RUNNING',
      TASKS: '3',
      ATTACHED: '0',
      EPOCH: '1',
      LATEST: '-',
      CHECKPOINTING: 'IDLE',
      'RESTORE POINT': '-',
    },
  ]);
  t.like(JSON.parse(gc.stdout), { dryRun: true, orphans: 0, pieces: [] });
});

test('commands refuse unknown jobs, bad files and bad arguments with one clear line and exit status 1', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): Promise<string> =>
    writeFile(join(dir, name), text).then(() => join(dir, name));
  const [good, notJson, notSpec, malformed] = await Promise.all([
    file('good.json', JSON.stringify(fanInSpec('orders', 1, 1))),
    file('not-json.json', '{ jobId: orders'),
    file('array.json', '[]'),
    file('malformed.json', JSON.stringify({ jobId: 'no spaces please', tasks: [] })),
  ]);
  const cases: Array<[args: string[], stderr: RegExp]> = [
    [['--progress', 'trigger', 'nope', '--wait'], /^ckpt: UNKNOWN_JOB: no job nope/],
    [['restore', 'nope'], /^ckpt: UNKNOWN_JOB: no job nope/],
    [['watch', 'nope'], /^ckpt: UNKNOWN_JOB: no job nope/],
    [['savepoint', 'nope'], /^ckpt: UNKNOWN_JOB: no job nope/],
    [['delete-savepoint', 'nope'], /expected a savepoint as <job>\/<checkpoint id>, got "nope"/],
    [['submit', join(dir, 'missing.json')], /^ckpt: ENOENT: no such file or directory/],
    [['submit', notJson], /^ckpt: .*not-json\.json is not JSON: /],
    [['submit', notSpec], /^ckpt: .*array\.json does not hold a job spec: expected a JSON object$/m],
    [['submit', malformed], /^ckpt: MALFORMED: spec\.job_id "no spaces please"/],
    [['submit', good, '--from-savepoint', 'nope/3'], /^ckpt: UNKNOWN_CHECKPOINT: job nope has no savepoint 3/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  const before = await c.dump();
  // A few at a time: each is a process that compiles the CLI.
  for (let i = 0; i < cases.length; i += 4) {
    const batch = cases.slice(i, i + 4);
    const results = await Promise.all(batch.map(([args]) => ckpt(c.address, ...args)));
    batch.forEach(([args, stderr], j) => {
      const res = results[j] ?? { code: 0, stdout: '', stderr: '' };
      t.is(res.code, 1, `ckpt ${args.join(' ')}: ${res.stderr}`);
      assertRefused(t, res, stderr);
    });
  }
  t.deepEqual(await c.dump(), before, 'nothing was stored');
});
