/**
 * The contract from another language: a Python client, with stubs that
 * protoc generates from proto/ and Debian's python3-grpcio, lists jobs and
 * checkpoints through CheckpointQuery and reads an error's reason.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const run = promisify(execFile);
const servers = useServers();
/** Debian's interpreter: the one that sees python3-grpcio. */
const PYTHON = '/usr/bin/python3';

test('a Python client lists jobs and checkpoints through CheckpointQuery', async (t) => {
  const stubs = await mkdtemp(join(tmpdir(), 'ckpt-py-'));
  t.teardown(() => rm(stubs, { recursive: true, force: true }));
  const protos = (await readdir('proto/ckpt/v1')).filter((f) => f.endsWith('.proto')).map((f) => `proto/ckpt/v1/${f}`);
  await run('protoc', [
    '-I',
    'proto',
    `--python_out=${stubs}`,
    `--grpc_python_out=${stubs}`,
    '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin',
    ...protos,
  ]);

  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('orders', 2, 1, { retained: 5 });
  await c.client.submitJob({ spec });
  await c.client.submitJob({ spec: fanInSpec('billing', 1, 1) });
  await c.worker({ jobId: 'orders', workerId: 'w0', taskIds: ['src-0', 'src-1', 'sink-0'], spec });
  await c.started('orders');
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 });
    ids.push(res.checkpoint?.checkpointId ?? 0);
  }

  const { stdout } = await run(PYTHON, ['test/python/query_client.py', stubs, c.address, 'orders'], {
    timeout: 30_000,
  });
  const out = JSON.parse(stdout) as {
    jobs: string[];
    checkpoints: Array<{ id: number; state: string }>;
    manifest_tasks: string[];
    manifest_positions: Record<string, Array<[string, number]>>;
    unknown_job: { code: string; reason: string };
  };
  t.deepEqual(out.jobs, ['billing', 'orders']);
  t.deepEqual(
    out.checkpoints,
    [...ids].reverse().map((id) => ({ id, state: 'CHECKPOINT_STATE_COMPLETED' })),
    'two pages (two, then one), newest first',
  );
  t.deepEqual(out.manifest_tasks, ['sink-0', 'src-0', 'src-1']);
  t.is(out.manifest_positions['src-0']?.length, 1);
  t.deepEqual(out.unknown_job, { code: 'NOT_FOUND', reason: 'UNKNOWN_JOB' });
});
