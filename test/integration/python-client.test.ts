/**
 * The contract from another language: a Python client, with stubs that
 * protoc generates from proto/ and Debian's python3-grpcio, lists jobs and
 * checkpoints through CheckpointQuery and reads an error's reason, in the
 * open and over mutual TLS with a reader's token of an access policy.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { certDir, makeCa } from '../helpers/certs.js';
import { useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const run = promisify(execFile);
const servers = useServers();
/** Debian's interpreter: the one that sees python3-grpcio. */
const PYTHON = '/usr/bin/python3';

interface PythonOutput {
  jobs: string[];
  checkpoints: Array<{ id: number; state: string }>;
  manifest_tasks: string[];
  manifest_positions: Record<string, Array<[string, number]>>;
  unknown_job: { code: string; reason: string };
}

async function stubsDir(t: ExecutionContext): Promise<string> {
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
  return stubs;
}

/** Runs the Python client against `address` with `env`; its JSON output. */
async function python(stubs: string, address: string, env: Record<string, string> = {}): Promise<PythonOutput> {
  const { stdout } = await run(PYTHON, ['test/python/query_client.py', stubs, address, 'orders'], {
    timeout: 30_000,
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout) as PythonOutput;
}

test('a Python client lists jobs and checkpoints through CheckpointQuery', async (t) => {
  const stubs = await stubsDir(t);
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

  const out = await python(stubs, c.address);
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

test('a Python client over mutual TLS with a reader token sees only its jobs and reads a refusal', async (t) => {
  const stubs = await stubsDir(t);
  const dir = await certDir(t);
  const ca = await makeCa(dir, 'ca');
  const [server, client] = await Promise.all([
    ca.issue('coordinator', ['localhost', '127.0.0.1']),
    ca.issue('python', ['python']),
  ]);
  const token = 'python-reader-0123456789';
  const policy = join(dir, 'policy.json');
  await writeFile(
    policy,
    JSON.stringify({
      principals: [
        { name: 'python', roles: ['reader'], jobs: ['orders'], token: { env: 'CKPT_PY_TEST_TOKEN' } },
        { name: 'admin', roles: ['admin'], certificate: { commonName: 'coordinator' } },
      ],
    }),
  );
  process.env.CKPT_PY_TEST_TOKEN = token;
  const tls = { caFile: ca.cert, certFile: server.cert, keyFile: server.key };
  const c = await startTestCoordinator(
    t,
    servers,
    { tlsCert: server.cert, tlsKey: server.key, tlsClientCa: ca.cert, accessPolicy: policy },
    { tls },
  );
  const spec = fanInSpec('orders', 2, 1, { retained: 5 });
  await c.client.submitJob({ spec });
  await c.client.submitJob({ spec: fanInSpec('billing', 1, 1) });
  await c.worker({ jobId: 'orders', workerId: 'w0', taskIds: ['src-0', 'src-1', 'sink-0'], spec });
  await c.started('orders');
  await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 });

  const out = await python(stubs, c.address, {
    CKPT_TLS_CA: ca.cert,
    CKPT_TLS_CLIENT_CERT: client.cert,
    CKPT_TLS_CLIENT_KEY: client.key,
    CKPT_TLS_SERVER_NAME: 'localhost',
    CKPT_AUTH_TOKEN: token,
  });
  t.deepEqual(out.jobs, ['orders'], "billing is not the reader's to see");
  t.is(out.checkpoints.length, 1);
  t.deepEqual(out.unknown_job, { code: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED' });
});
