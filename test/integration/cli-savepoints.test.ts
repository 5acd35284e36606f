/**
 * The commands of `ckpt` that wait for a checkpoint, `trigger --wait` and
 * `savepoint`, with their progress on stderr, and the savepoint commands
 * around them: `savepoints`, `submit --from-savepoint`, `delete-savepoint`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import test from 'ava';
import { assertRefused, checkpointedJob, ckpt, tableRows } from '../helpers/cli.js';
import { fanInSpec } from '../helpers/coordinator.js';
import { useServers } from '../helpers/index.js';
import type { BehaviourHook } from '../sim/index.js';

const servers = useServers();

/** Acknowledges 2.5 s late, so that a waiting command reports at least once with one of two tasks in. */
const slowAck: BehaviourHook = async () => {
  await delay(2500);
  return 'ack' as const;
};

test('ckpt trigger starts a checkpoint; --wait waits for it, with progress on stderr, and fails when it aborts', async (t) => {
  const { c, w } = await checkpointedJob(t, servers);
  w.setBehaviour('sink-0', slowAck);
  const waited = await ckpt(c.address, '--json', '--progress', 'trigger', 'orders', '--wait', '--full');
  t.is(waited.code, 0, waited.stderr);
  const { checkpoint } = JSON.parse(waited.stdout) as {
    checkpoint: { checkpointId: number; state: string; snapshotType: string };
  };
  t.like(checkpoint, { state: 'CHECKPOINT_STATE_COMPLETED', snapshotType: 'SNAPSHOT_TYPE_FULL' });
  t.regex(
    waited.stderr,
    new RegExp(`^waiting for checkpoint ${checkpoint.checkpointId} of orders: 1/2 tasks acknowledged, \\d+ s$`, 'm'),
  );

  w.setBehaviour('sink-0', 'decline');
  const aborted = await ckpt(c.address, 'trigger', 'orders', '--wait');
  assertRefused(t, aborted, /^ckpt: checkpoint \d+ of orders aborted: DECLINED: /m);
  t.like(tableRows(aborted.stdout)[0], { STATUS: 'ABORTED', REASON: 'DECLINED' });
  t.notRegex(aborted.stderr, /waiting/, 'no progress unless asked for or on a terminal');

  w.setBehaviour('sink-0', 'ack');
  const started = await ckpt(c.address, 'trigger', 'orders');
  t.is(started.code, 0, started.stderr);
  t.like(tableRows(started.stdout)[0], { STATUS: 'PENDING', TYPE: 'FULL (manual)', DURATION: '-' });
});

test('ckpt savepoint takes one with progress; savepoints lists it, submit starts a job from it, delete-savepoint deletes it', async (t) => {
  const { c, w } = await checkpointedJob(t, servers);
  w.setBehaviour('sink-0', 'decline');
  const failed = await ckpt(c.address, 'savepoint', 'orders');
  assertRefused(t, failed, /^ckpt: savepoint failed: checkpoint \d+ of orders aborted: DECLINED: /m);
  t.like(tableRows(failed.stdout)[0], { STATUS: 'ABORTED', TYPE: 'SAVEPOINT (manual)' });

  w.setBehaviour('sink-0', slowAck);
  const taken = await ckpt(c.address, '--progress', 'savepoint', 'orders', '--stop');
  t.is(taken.code, 0, taken.stderr);
  const [, name = '', id = ''] =
    /^savepoint (orders\/(\d+)): 2 tasks, 2\.0 KiB; job canceled$/.exec(taken.stdout.trim()) ?? [];
  t.not(name, '', taken.stdout);
  t.regex(taken.stderr, new RegExp(`^waiting for savepoint ${id} of orders: 1/2 tasks acknowledged, \\d+ s$`, 'm'));

  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const specFile = join(dir, 'job.json');
  await writeFile(specFile, JSON.stringify(fanInSpec('orders-2', 1, 1)));
  const [listed, json, submitted] = await Promise.all([
    ckpt(c.address, 'savepoints', 'orders'),
    ckpt(c.address, '--json', 'savepoints', 'orders'),
    ckpt(c.address, '--json', 'submit', specFile, '--from-savepoint', name),
  ]);
  const [row] = tableRows(listed.stdout);
  t.like(row, { SAVEPOINT: name, TASKS: '2', 'STATE SIZE': '2.0 KiB' });
  t.regex(row?.CREATED ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.deepEqual(
    (JSON.parse(json.stdout) as { savepoints: { ref: unknown }[] }).savepoints.map((s) => s.ref),
    [{ jobId: 'orders', checkpointId: Number(id) }],
  );
  t.is(submitted.code, 0, submitted.stderr);
  t.like(JSON.parse(submitted.stdout), {
    created: true,
    job: { spec: { jobId: 'orders-2' }, latestCheckpointId: Number(id) },
  });

  const deleted = await ckpt(c.address, '--json', 'delete-savepoint', name);
  t.deepEqual(JSON.parse(deleted.stdout), { deleted: true });
  const [again, listedAgain] = await Promise.all([
    ckpt(c.address, 'delete-savepoint', name),
    ckpt(c.address, 'savepoints', 'orders'),
  ]);
  assertRefused(t, again, new RegExp(`^ckpt: no savepoint ${name}$`, 'm'));
  t.is(again.stdout, '');
  t.is(listedAgain.stdout, 'no savepoints\n');
});
