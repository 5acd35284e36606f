/**
 * The query and control commands of `ckpt` as a user runs them against a
 * coordinator with a running job: `checkpoints`, `checkpoint`, `watch` and
 * `cancel`, as tables and as `--json`, and their refusals.
 */
import { existsSync } from 'node:fs';
import test from 'ava';
import { assertRefused, checkpointedJob, ckpt, spawnCli, tableRows } from '../helpers/cli.js';
import { eventually, useServers } from '../helpers/index.js';

const servers = useServers();

test('ckpt checkpoints lists a job checkpoints newest first, as a table and as JSON', async (t) => {
  const { c, completed, declined } = await checkpointedJob(t, servers);
  const listed = await ckpt(c.address, 'checkpoints', 'orders');
  t.is(listed.code, 0, listed.stderr);
  t.regex(
    listed.stdout.split('\n')[0] ?? '',
    /^ID\s+STATUS\s+TYPE\s+ACKED\s+TRIGGERED\s+LATEST ACK\s+DURATION\s+PERSISTED\s+STATE SIZE\s+REASON$/,
  );
  const rows = tableRows(listed.stdout);
  t.deepEqual(
    rows.map((r) => [r.ID, r.STATUS, r.REASON]),
    [
      [String(completed[1]), 'COMPLETED', ''],
      [String(declined), 'ABORTED', 'DECLINED'],
      [String(completed[0]), 'COMPLETED', ''],
    ],
  );
  const newest = rows[0] ?? {};
  t.like(newest, { TYPE: 'FULL (manual)', ACKED: '2/2', PERSISTED: '2.0 KiB', 'STATE SIZE': '2.0 KiB' });
  t.regex(newest.TRIGGERED ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.regex(newest['LATEST ACK'] ?? '', /^(-|\+\d+ ms)$/, 'after the trigger, or - from a coordinator that does not say');
  t.regex(newest.DURATION ?? '', /^\d+ ms$/);
  const limited = await ckpt(c.address, 'checkpoints', 'orders', '--limit', '1');
  t.is(limited.stdout.trim().split('\n').length, 2, 'a header and one row');
  const json = await ckpt(c.address, '--json', 'checkpoints', 'orders');
  const parsed = JSON.parse(json.stdout) as { checkpointId: number; state: string; abortReason: string }[];
  t.deepEqual(
    parsed.map((p) => [p.checkpointId, p.state, p.abortReason]),
    [
      [completed[1], 'CHECKPOINT_STATE_COMPLETED', 'ABORT_REASON_UNSPECIFIED'],
      [declined, 'CHECKPOINT_STATE_ABORTED', 'ABORT_REASON_DECLINED'],
      [completed[0], 'CHECKPOINT_STATE_COMPLETED', 'ABORT_REASON_UNSPECIFIED'],
    ],
  );
  const [unknown, badLimit] = await Promise.all([
    ckpt(c.address, 'checkpoints', 'nope'),
    ckpt(c.address, 'checkpoints', 'orders', '--limit', 'all'),
  ]);
  assertRefused(t, unknown, /^ckpt: UNKNOWN_JOB: no job nope/);
  assertRefused(t, badLimit, /argument 'all' is invalid\. expected a positive integer, got "all"/);
});

test('ckpt checkpoint shows one checkpoint with its manifest; an unknown one is refused', async (t) => {
  const { c, completed, declined } = await checkpointedJob(t, servers);
  const id = completed[1] ?? 0;
  const [shown, json, aborted, missing, unknownJob, junk] = await Promise.all([
    ckpt(c.address, 'checkpoint', 'orders', String(id)),
    ckpt(c.address, '--json', 'checkpoint', 'orders', String(id)),
    ckpt(c.address, 'checkpoint', 'orders', String(declined)),
    ckpt(c.address, 'checkpoint', 'orders', String(id + 1000)),
    ckpt(c.address, 'checkpoint', 'nope', '1'),
    ckpt(c.address, 'checkpoint', 'orders', 'latest'),
  ]);
  t.is(shown.code, 0, shown.stderr);
  const lines = shown.stdout.trimEnd().split('\n');
  t.like(tableRows(lines.slice(0, 2).join('\n'))[0], { ID: String(id), STATUS: 'COMPLETED' });
  t.regex(lines[2] ?? '', /^epoch: 1 {2}manifest: \d+ B {2}max alignment: \d+ ms {2}max snapshot: \d+ ms$/);
  t.is(lines[3], 'tasks:');
  t.deepEqual(
    tableRows(lines.slice(4).join('\n')).map((task) => [task.TASK, task.SIZE]),
    [
      ['sink-0', '1.0 KiB'],
      ['src-0', '1.0 KiB'],
    ],
    'one row per task of the manifest',
  );
  const parsed = JSON.parse(json.stdout) as {
    checkpoint: { checkpointId: number };
    manifest: { checkpointId: number; tasks: { taskId: string }[] };
  };
  t.is(parsed.checkpoint.checkpointId, id);
  t.deepEqual(
    parsed.manifest.tasks.map((task) => task.taskId),
    ['sink-0', 'src-0'],
  );
  t.is(aborted.code, 0, aborted.stderr);
  t.regex(aborted.stdout, /^why: DECLINED: .*sink-0/m, 'an aborted checkpoint says why');
  const abortedLines = aborted.stdout.trimEnd().split('\n');
  const abortedTasks = tableRows(abortedLines.slice(abortedLines.indexOf('tasks:') + 1).join('\n'));
  t.deepEqual(
    abortedTasks.map((task) => task.TASK),
    ['sink-0', 'src-0'],
  );
  t.like(abortedTasks[0], { ACKED: '-', SIZE: '-' }, 'the task that declined never acknowledged');
  assertRefused(t, missing, /UNKNOWN_CHECKPOINT/);
  assertRefused(t, unknownJob, /UNKNOWN_JOB/);
  assertRefused(t, junk, /expected a checkpoint id \(a non-negative integer\), got "latest"/);
});

test('ckpt watch streams checkpoint events live until interrupted', async (t) => {
  const { c } = await checkpointedJob(t, servers);
  for (const json of [false, true]) {
    const watch = spawnCli(t, '--address', c.address, ...(json ? ['--json'] : []), 'watch', 'orders');
    // One JSON document per line.
    const events = (): { checkpointId: number; state: string }[] =>
      watch
        .out()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { checkpointId: number; state: string });
    const printed = (id: number): boolean =>
      json
        ? events().some((e) => e.checkpointId === id && e.state === 'CHECKPOINT_STATE_COMPLETED')
        : watch.out().includes(`orders ${id} COMPLETED\n`);
    // The stream is open once a checkpoint shows up in it; those before are not seen.
    let id = 0;
    await eventually(
      async () => {
        if (id === 0 || !printed(id)) {
          const res = await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 });
          id = res.checkpoint?.checkpointId ?? 0;
        }
        // The completion is printed just after the trigger call returns.
        return await eventually(() => printed(id), { timeoutMs: 2_000 }).catch(() => false);
      },
      { timeoutMs: 30_000, pollMs: 200, what: `ckpt watch to print a completed checkpoint (stderr: ${watch.err()})` },
    );
    // The stream is open: the next checkpoint shows from its trigger on.
    const res = await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 });
    id = res.checkpoint?.checkpointId ?? 0;
    await eventually(() => printed(id), { what: `checkpoint ${id} printed` });
    if (json) {
      t.deepEqual(
        events()
          .filter((e) => e.checkpointId === id)
          .map((e) => e.state),
        ['CHECKPOINT_STATE_PENDING', 'CHECKPOINT_STATE_COMPLETED'],
      );
    } else {
      t.regex(watch.out(), new RegExp(`^orders ${id} PENDING$`, 'm'));
      t.regex(watch.out(), new RegExp(`^orders ${id} COMPLETED$`, 'm'));
    }
    watch.child.kill('SIGINT');
    const code = await watch.exited;
    t.is(code, 0, `ckpt watch ends cleanly on Ctrl-C (stderr: ${watch.err()})`);
  }
});

test('ckpt cancel cancels a job and says so, as text and as JSON; an unknown job is refused', async (t) => {
  const { c } = await checkpointedJob(t, servers);
  const canceled = await ckpt(c.address, 'cancel', 'orders');
  t.is(canceled.code, 0, canceled.stderr);
  t.like(tableRows(canceled.stdout)[0], { JOB: 'orders', STATE: 'CANCELED' });
  const [again, job, triggered, unknown] = await Promise.all([
    ckpt(c.address, '--json', 'cancel', 'orders'),
    ckpt(c.address, '--json', 'job', 'orders'),
    ckpt(c.address, 'trigger', 'orders'),
    ckpt(c.address, 'cancel', 'nope'),
  ]);
  t.is(
    (JSON.parse(again.stdout) as { job: { state: string } }).job.state,
    'JOB_STATE_CANCELED',
    'a no-op the second time',
  );
  t.is((JSON.parse(job.stdout) as { state: string }).state, 'JOB_STATE_CANCELED');
  assertRefused(t, triggered, /^ckpt: /);
  assertRefused(t, unknown, /UNKNOWN_JOB/);
});

interface DevStarted {
  etcd: { url: string; dataDir: string };
  coordinator: string;
  dashboard: string;
  metrics: string;
  env: Record<string, string>;
}

test('ckpt dev runs etcd, NATS and a coordinator, prints how to reach them, and stops them all on Ctrl-C', async (t) => {
  const dev = spawnCli(t, 'dev', '--listen', '127.0.0.1:0', '--log-level', 'warn');
  // A second one at once, printing one JSON document and its progress while it starts.
  const devJson = spawnCli(t, '--json', '--progress', 'dev', '--listen', '127.0.0.1:0', '--log-level', 'warn');
  await eventually(() => dev.out().includes('Ctrl-C stops everything.'), {
    timeoutMs: 60_000,
    what: `ckpt dev to start (stderr: ${dev.err().slice(-500)})`,
  });
  const address = /^coordinator {2}(\S+)$/m.exec(dev.out())?.[1] ?? '';
  const dataDir = /\(data in (\S+)\)$/m.exec(dev.out())?.[1] ?? '';
  const metrics = /^metrics {6}(\S+)/m.exec(dev.out())?.[1] ?? '';
  const dashboard = /^dashboard {4}(\S+)$/m.exec(dev.out())?.[1] ?? '';
  t.is(metrics, `${dashboard}metrics`, 'the dashboard and the metrics share the HTTP port');
  t.regex(dashboard, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  t.regex(
    dev.out(),
    new RegExp(
      `^export CKPT_ADDRESS=${address.replace(/\./g, '\\.')} CKPT_ETCD=http://\\S+ CKPT_NATS=nats://\\S+ CKPT_DASHBOARD=${dashboard.slice(0, -1).replace(/\./g, '\\.')}$`,
      'm',
    ),
  );
  t.true(existsSync(dataDir), 'etcd keeps its data in the directory it names');
  const jobs = await ckpt(address, 'jobs');
  t.is(jobs.code, 0, jobs.stderr);
  const scraped = await fetch(metrics);
  t.is(scraped.status, 200);
  t.regex(await scraped.text(), /^ckpt_coordinator_is_leader 1$/m);

  await eventually(() => devJson.err().includes('Ctrl-C stops everything.'), {
    timeoutMs: 60_000,
    what: `ckpt --json dev to start (stderr: ${devJson.err().slice(-500)})`,
  });
  const started = JSON.parse(devJson.out()) as DevStarted;
  t.is(started.metrics, `${started.dashboard}metrics`);
  t.like(started.env, { CKPT_ADDRESS: started.coordinator, CKPT_DASHBOARD: started.dashboard.slice(0, -1) });
  t.regex(devJson.err(), /^starting etcd and NATS, 0 s$/m, 'progress on stderr');
  t.regex(devJson.err(), /^starting the coordinator, 0 s$/m);

  for (const d of [dev, devJson]) d.child.kill('SIGINT');
  t.deepEqual(await Promise.all([dev.exited, devJson.exited]), [0, 0], dev.err() + devJson.err());
  t.false(existsSync(dataDir), 'its temporary data went with it');
  t.false(existsSync(started.etcd.dataDir));
  t.not((await ckpt(address, 'jobs')).code, 0, 'the coordinator is gone');
});
