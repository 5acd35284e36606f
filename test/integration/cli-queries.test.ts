/**
 * The query and control commands of `ckpt` as a user runs them against a
 * coordinator with a running job: `checkpoints`, `checkpoint`, `watch` and
 * `cancel`, as tables and as `--json`, and their refusals.
 */
import { existsSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { ckpt, spawnCli } from '../helpers/cli.js';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

/** A running job `orders` of a source and a sink on one simulated worker, with checkpoints as listed. */
async function runningJob(t: ExecutionContext): Promise<{ c: TestCoordinator; completed: number[]; declined: number }> {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('orders', 1, 1, { retained: 5, tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'orders', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('orders');
  const trigger = async () =>
    (await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 })).checkpoint;
  const completed = [(await trigger())?.checkpointId ?? 0];
  w.setBehaviour('sink-0', 'decline');
  const declined = (await trigger())?.checkpointId ?? 0;
  w.setBehaviour('sink-0', 'ack');
  completed.push((await trigger())?.checkpointId ?? 0);
  return { c, completed, declined };
}

test('ckpt checkpoints lists a job checkpoints newest first, as a table and as JSON', async (t) => {
  const { c, completed, declined } = await runningJob(t);
  const listed = await ckpt(c.address, 'checkpoints', 'orders');
  t.is(listed.code, 0, listed.stderr);
  const [header, ...rows] = listed.stdout.trim().split('\n');
  t.regex(
    header ?? '',
    /^ID\s+STATE\s+REASON\s+TYPE\s+TASKS\s+DURATION\s+STATE SIZE\s+MANIFEST\s+MAX ALIGN\s+MAX SNAPSHOT$/,
  );
  t.deepEqual(
    rows.map((r) => r.split(/\s+/).slice(0, 3)),
    [
      [String(completed[1]), 'COMPLETED', 'FULL'],
      [String(declined), 'ABORTED', 'DECLINED'],
      [String(completed[0]), 'COMPLETED', 'FULL'],
    ],
  );
  t.regex(rows[0] ?? '', /\s2\/2\s+\d+ ms\s/, 'tasks acknowledged and a duration');
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
  const unknown = await ckpt(c.address, 'checkpoints', 'nope');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /UNKNOWN_JOB/);
});

test('ckpt checkpoint shows one checkpoint with its manifest; an unknown one is refused', async (t) => {
  const { c, completed } = await runningJob(t);
  const id = completed[1] ?? 0;
  const shown = await ckpt(c.address, 'checkpoint', 'orders', String(id));
  t.is(shown.code, 0, shown.stderr);
  const lines = shown.stdout.trim().split('\n');
  t.regex(lines[1] ?? '', new RegExp(`^${id}\\s+COMPLETED\\s`));
  t.is(lines[2], 'manifest:');
  t.deepEqual(
    lines.slice(3).map((l) => l.trim().split(/\s+/)[0]),
    ['sink-0', 'src-0'],
    'one line per task of the manifest',
  );
  const json = JSON.parse((await ckpt(c.address, '--json', 'checkpoint', 'orders', String(id))).stdout) as {
    checkpoint: { checkpointId: number };
    manifest: { checkpointId: number; tasks: { taskId: string }[] };
  };
  t.is(json.checkpoint.checkpointId, id);
  t.deepEqual(
    json.manifest.tasks.map((task) => task.taskId),
    ['sink-0', 'src-0'],
  );
  const missing = await ckpt(c.address, 'checkpoint', 'orders', String(id + 1000));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /UNKNOWN_CHECKPOINT/);
  const junk = await ckpt(c.address, 'checkpoint', 'orders', 'latest');
  t.is(junk.code, 1);
  t.notRegex(junk.stderr, /at .*\.ts:\d+/, 'a clear error, no stack');
});

test('ckpt watch streams checkpoint events live until interrupted', async (t) => {
  const { c } = await runningJob(t);
  for (const json of [false, true]) {
    const watch = spawnCli(t, '--address', c.address, ...(json ? ['--json'] : []), 'watch', 'orders');
    const events = (): { checkpointId: number; state: string }[] =>
      watch
        .out()
        .split(/\n(?=\{)/)
        .filter((chunk) => chunk.trim() !== '')
        .map((chunk) => JSON.parse(chunk) as { checkpointId: number; state: string });
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

test('ckpt cancel cancels a job and says so; an unknown job is refused', async (t) => {
  const { c } = await runningJob(t);
  const canceled = await ckpt(c.address, 'cancel', 'orders');
  t.is(canceled.code, 0, canceled.stderr);
  t.regex(canceled.stdout, /^orders\s+CANCELED\s/m);
  const job = JSON.parse((await ckpt(c.address, '--json', 'job', 'orders')).stdout) as { state: string };
  t.is(job.state, 'JOB_STATE_CANCELED');
  const triggered = await ckpt(c.address, 'trigger', 'orders');
  t.is(triggered.code, 1, 'a canceled job takes no checkpoint');
  const unknown = await ckpt(c.address, 'cancel', 'nope');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /UNKNOWN_JOB/);
});

test('ckpt dev runs etcd, NATS and a coordinator, prints how to reach them, and stops them all on Ctrl-C', async (t) => {
  const dev = spawnCli(t, 'dev', '--listen', '127.0.0.1:0', '--log-level', 'warn');
  await eventually(() => dev.out().includes('Ctrl-C stops everything.'), {
    timeoutMs: 60_000,
    what: `ckpt dev to start (stderr: ${dev.err().slice(-500)})`,
  });
  const address = /^coordinator {2}(\S+)$/m.exec(dev.out())?.[1] ?? '';
  const dataDir = /\(data in (\S+)\)$/m.exec(dev.out())?.[1] ?? '';
  const metrics = /^metrics {6}(\S+)/m.exec(dev.out())?.[1] ?? '';
  t.regex(
    dev.out(),
    new RegExp(
      `^export CKPT_ADDRESS=${address.replace(/\./g, '\\.')} CKPT_ETCD=http://\\S+ CKPT_NATS=nats://\\S+$`,
      'm',
    ),
  );
  t.true(existsSync(dataDir), 'etcd keeps its data in the directory it names');
  const jobs = await ckpt(address, 'jobs');
  t.is(jobs.code, 0, jobs.stderr);
  const scraped = await fetch(metrics);
  t.is(scraped.status, 200);
  t.regex(await scraped.text(), /^ckpt_coordinator_is_leader 1$/m);
  dev.child.kill('SIGINT');
  const code = await dev.exited;
  t.is(code, 0, dev.err());
  t.false(existsSync(dataDir), 'its temporary data went with it');
  t.not((await ckpt(address, 'jobs')).code, 0, 'the coordinator is gone');
});
