/**
 * Roles on the gRPC API against a real coordinator under mutual TLS, etcd
 * and NATS: an access policy gives an operator and a reader their tokens
 * and a worker its client certificate. Each may do its part; everything
 * else is PERMISSION_DENIED with a reason and changes nothing; unknown
 * credentials are UNAUTHENTICATED. An SDK worker with its certificate
 * checkpoints; the CLI shows a refusal; a standby forwards the dashboard's
 * queries as the coordinators' own principal.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  createCoordinatorClient,
  createQueryClient,
  type ClientOptions,
  type ClientTlsOptions,
} from '../../src/client/index.js';
import type { CoordinatorConfigInput } from '../../src/config/index.js';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { certDir, makeCa, type CertFiles } from '../helpers/certs.js';
import { assertRefused, ckpt } from '../helpers/cli.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { reflectionList, refused, rawSession } from '../helpers/refusals.js';
import type { ErrorReason } from '../../src/core/errors.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, tickingSource } from './worker-harness.js';

const servers = useServers();

const OPERATOR_TOKEN = 'operator-0123456789abcdef';
const READER_TOKEN = 'reader-0123456789abcdef';
/** Calls that must fail do so at once, without retrying. */
const ONCE = { retry: { timeoutMs: 0 } };

interface Setup {
  c: TestCoordinator;
  dir: string;
  policyFile: string;
  ca: string;
  /** Client TLS presenting the certificate of `name`. */
  tlsAs(name: 'worker-a' | 'stranger' | 'admin'): ClientTlsOptions;
  /** Coordinator and query clients with `options`, closed at the test's end. */
  clients(options: ClientOptions): {
    client: ReturnType<typeof createCoordinatorClient>;
    query: ReturnType<typeof createQueryClient>;
  };
}

function policy(readerJobs: string[]): string {
  return JSON.stringify({
    principals: [
      { name: 'operators', roles: ['operator'], token: { file: 'operator-token' } },
      { name: 'dashboards', roles: ['reader'], jobs: readerJobs, token: { env: 'CKPT_TEST_READER_TOKEN' } },
      { name: 'workers-a', roles: ['worker'], jobs: ['a'], certificate: { commonName: 'worker-a' } },
      { name: 'coordinators', roles: ['reader'], certificate: { commonName: 'coordinator' } },
      { name: 'admin', roles: ['admin'], certificate: { commonName: 'admin' } },
    ],
  });
}

async function setup(t: ExecutionContext, overrides: CoordinatorConfigInput = {}): Promise<Setup> {
  process.env.CKPT_TEST_READER_TOKEN = READER_TOKEN;
  const dir = await certDir(t);
  const ca = await makeCa(dir, 'ca');
  const [server, ...clientCerts] = await Promise.all([
    ca.issue('coordinator', ['localhost', '127.0.0.1']),
    ca.issue('worker-a', ['worker-a']),
    ca.issue('stranger', ['stranger']),
    ca.issue('admin', ['admin']),
  ]);
  const certs = new Map<string, CertFiles>(
    clientCerts.map((cert, i) => [['worker-a', 'stranger', 'admin'][i] as string, cert]),
  );
  const tlsAs = (name: string): ClientTlsOptions => {
    const cert = certs.get(name) as CertFiles;
    return { caFile: ca.cert, certFile: cert.cert, keyFile: cert.key };
  };
  await writeFile(join(dir, 'operator-token'), `${OPERATOR_TOKEN}\n`);
  const policyFile = join(dir, 'policy.json');
  await writeFile(policyFile, policy(['a', 'team-*']));
  const c = await startTestCoordinator(
    t,
    servers,
    {
      tlsCert: server.cert,
      tlsKey: server.key,
      tlsClientCa: ca.cert,
      accessPolicy: policyFile,
      tlsReloadIntervalMs: 200,
      ...overrides,
    },
    { tls: tlsAs('admin') },
  );
  const clients: Setup['clients'] = (options) => {
    const client = createCoordinatorClient(c.address, options);
    const query = createQueryClient(c.address, options);
    t.teardown(() => {
      client.close();
      query.close();
    });
    return { client, query };
  };
  return { c, dir, policyFile, ca: ca.cert, tlsAs, clients };
}

/** Asserts the refusal as `refused` does, and shows its message in the test's output. */
async function denied(
  t: ExecutionContext,
  call: Promise<unknown>,
  reason: ErrorReason,
  code?: grpc.status,
): Promise<grpc.ServiceError> {
  const err = await refused(t, call, reason, code);
  t.log(err.details);
  return err;
}

const spec = (jobId: string) => ({ jobId, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }] });

test('operator, reader and worker may each do their part; the rest is refused and changes nothing', async (t) => {
  const s = await setup(t);
  // Under mutual TLS every client presents a certificate; one that names no principal identifies nobody.
  const operator = s.clients({ token: OPERATOR_TOKEN, tls: s.tlsAs('stranger'), ...ONCE });
  const reader = s.clients({ token: READER_TOKEN, tls: s.tlsAs('stranger'), ...ONCE });
  const worker = s.clients({ tls: s.tlsAs('worker-a'), ...ONCE });
  const stranger = s.clients({ tls: s.tlsAs('stranger'), ...ONCE });

  await operator.client.submitJob({ spec: spec('a') });
  await operator.client.submitJob({ spec: spec('b') });
  const before = await s.c.dump();

  // The reader sees the jobs its patterns match, and may change none.
  t.deepEqual(
    (await reader.query.listJobs({})).jobs.map((j) => j.spec?.jobId),
    ['a'],
  );
  t.deepEqual(
    (await operator.query.listJobs({})).jobs.map((j) => j.spec?.jobId),
    ['a', 'b'],
  );
  t.is((await reader.client.getJob({ jobId: 'a' })).job?.spec?.jobId, 'a');
  const getB = await denied(t, reader.client.getJob({ jobId: 'b' }), 'PERMISSION_DENIED', grpc.status.PERMISSION_DENIED); // prettier-ignore
  t.regex(getB.details, /"dashboards" \(reader on a, team-\*\) may not read job "b"/);
  const cancel = await denied(t, reader.client.cancelJob({ jobId: 'a' }), 'PERMISSION_DENIED');
  t.regex(cancel.details, /may not operate job "a": that needs one of the roles operator, admin/);
  await denied(t, reader.client.submitJob({ spec: spec('team-x') }), 'PERMISSION_DENIED');
  await denied(t, reader.client.triggerCheckpoint({ jobId: 'a' }), 'PERMISSION_DENIED');
  await denied(t, reader.client.restoreJob({ jobId: 'a', checkpointId: 1 }), 'PERMISSION_DENIED');
  await denied(t, reader.client.triggerSavepoint({ jobId: 'a' }), 'PERMISSION_DENIED');
  await denied(t, reader.client.collectGarbage({ jobId: 'a', dryRun: true }), 'PERMISSION_DENIED');
  await denied(t, reader.client.deleteSavepoint({ ref: { jobId: 'a', checkpointId: 1 } }), 'PERMISSION_DENIED');
  await denied(t, reader.client.acknowledgeCheckpoint({ jobId: 'a', epoch: 1, checkpointId: 1 }), 'PERMISSION_DENIED'); // prettier-ignore

  // The worker of job a may not operate it, nor attach to job b.
  await denied(t, worker.client.cancelJob({ jobId: 'a' }), 'PERMISSION_DENIED');
  await denied(t, worker.client.triggerCheckpoint({ jobId: 'a' }), 'PERMISSION_DENIED');
  await denied(t, worker.client.declineCheckpoint({ jobId: 'b', epoch: 1, checkpointId: 1 }), 'PERMISSION_DENIED');
  const session = rawSession(worker.client, [{ hello: { jobId: 'b', workerId: 'w', taskIds: ['src', 'sink'] } }]);
  const ended = await session.ended;
  t.is(ended?.code, grpc.status.PERMISSION_DENIED);
  t.regex(ended?.details ?? '', /"workers-a" \(worker on a\) may not run the tasks of job "b"/);
  t.log(`Attach: ${ended?.details ?? ''}`);

  // Unknown credentials identify nobody.
  const unknown = await denied(t, stranger.query.listJobs({}), 'UNAUTHENTICATED', grpc.status.UNAUTHENTICATED);
  t.regex(unknown.details, /CN="stranger" matches no principal/);
  await denied(t, s.clients({ token: 'not-a-token-0123456789', tls: s.tlsAs('worker-a'), ...ONCE }).client.getJob({ jobId: 'a' }), 'UNAUTHENTICATED'); // prettier-ignore
  const file = (name: string): Buffer => readFileSync(join(s.dir, name));
  const raw = new grpc.Client(
    s.c.address,
    grpc.credentials.createSsl(file('ca.pem'), file('stranger.key'), file('stranger.pem')),
    { 'grpc.ssl_target_name_override': 'localhost' },
  );
  t.teardown(() => raw.close());
  await t.throwsAsync(reflectionList(raw), { message: /UNAUTHENTICATED/ });

  t.deepEqual(await s.c.dump(), before, 'no refused call changed etcd');
  const metrics = await (await fetch(`http://${s.c.running.httpAddress}/metrics`)).text();
  t.regex(metrics, /^ckpt_access_refusals_total\{reason="PERMISSION_DENIED",principal="dashboards"\} 9$/m);
  t.regex(metrics, /^ckpt_access_refusals_total\{reason="PERMISSION_DENIED",principal="workers-a"\} 4$/m);
  t.regex(metrics, /^ckpt_access_refusals_total\{reason="UNAUTHENTICATED",principal="unknown"\} 3$/m);
  t.regex(metrics, /^ckpt_access_policy_stale 0$/m);
  t.like((await operator.client.getJob({ jobId: 'a' })).job, { state: 'JOB_STATE_RUNNING' });
});

test('an SDK worker identified by its client certificate checkpoints its job', async (t) => {
  const s = await setup(t);
  const operator = s.clients({ token: OPERATOR_TOKEN, tls: s.tlsAs('stranger') });
  await operator.client.submitJob({ spec: spec('a') });
  const state = await createLocalDirectoryBackend({ dir: join(s.dir, 'state'), fsync: false });
  /** A worker of `jobId`'s two tasks with the certificate of workers-a. */
  const worker = (jobId: string, workerId: string): Worker => {
    const w = new Worker({ coordinator: s.c.address, nats: [servers.natsUrl], jobId, workerId, state, tls: s.tlsAs('worker-a') }); // prettier-ignore
    w.addTask('src', tickingSource(10)).addTask('sink', countingSink([]));
    t.teardown(() => w.stop());
    return w;
  };
  await worker('a', 'w').start();
  await s.c.started('a');

  // A worker whose certificate has no worker role on its job stops at once, saying why, instead of retrying.
  await operator.client.submitJob({ spec: spec('b') });
  await t.throwsAsync(worker('b', 'intruder').start(), { message: /PERMISSION_DENIED.*"workers-a" \(worker on a\) may not run the tasks of job "b"/ }); // prettier-ignore
  const res = await operator.client.triggerCheckpoint({ jobId: 'a', wait: true }, { deadlineMs: 20_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
});

test('the CLI prints a refusal; a changed policy file applies without a restart', async (t) => {
  const s = await setup(t);
  const tlsFlags = ['--tls-ca', s.ca, '--tls-cert', join(s.dir, 'stranger.pem'), '--tls-key', join(s.dir, 'stranger.key')]; // prettier-ignore
  await s.c.client.submitJob({ spec: spec('team-x') });
  await writeFile(join(s.dir, 'reader-token'), READER_TOKEN);
  const cancel = await ckpt(s.c.address, '--token-file', join(s.dir, 'reader-token'), ...tlsFlags, 'cancel', 'team-x');
  assertRefused(t, cancel, /PERMISSION_DENIED.*"dashboards" \(reader on a, team-\*\) may not operate job "team-x"/);

  // The reader loses job team-x: after the reload its listing no longer shows it.
  const reader = s.clients({ token: READER_TOKEN, tls: s.tlsAs('stranger'), ...ONCE });
  t.deepEqual(
    (await reader.query.listJobs({})).jobs.map((j) => j.spec?.jobId),
    ['team-x'],
  );
  await writeFile(s.policyFile, policy(['a']));
  await eventually(async () => ((await reader.query.listJobs({})).jobs.length === 0 ? true : undefined), {
    what: 'the reloaded policy hides team-x',
  });
  await denied(t, reader.query.getCheckpointStatistics({ jobId: 'team-x' }), 'PERMISSION_DENIED');
  t.like((await s.c.client.getJob({ jobId: 'team-x' })).job, { state: 'JOB_STATE_RUNNING' });
});

/** GET `url` over HTTP or HTTPS with `headers` and, for HTTPS, the CA and client certificate of `tls`. */
function get(
  url: string,
  headers: Record<string, string> = {},
  tls?: ClientTlsOptions,
): Promise<{ status: number; body: { jobs?: Array<{ id: string }>; errors?: string[]; served_by?: string } }> {
  const read = (f: string | undefined): Buffer | undefined => (f === undefined ? undefined : readFileSync(f));
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      { headers, ca: read(tls?.caFile), cert: read(tls?.certFile), key: read(tls?.keyFile), servername: 'localhost' },
      (res) => {
        let text = '';
        res.on('data', (b: Buffer) => (text += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as never }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('the JSON API: a standby forwards as the coordinators principal; each caller sees what it may read', async (t) => {
  const s = await setup(t);
  await s.c.client.submitJob({ spec: spec('a') });
  await s.c.client.submitJob({ spec: spec('b') });
  const standby = await s.c.standby();
  const url = (path: string): string => `http://${standby.httpAddress}/api/v1${path}`;
  const asReader = { authorization: `Bearer ${READER_TOKEN}` };
  const jobs = await eventually(
    async () => {
      const res = await get(url('/jobs'), asReader);
      return res.status === 200 ? res.body : undefined;
    },
    { what: 'the standby answers for the leader' },
  );
  t.like(jobs, { served_by: 'leader' });
  t.deepEqual(
    jobs.jobs?.map((j) => j.id),
    ['a'],
    'the reader sees only job a; the standby itself may read both',
  );
  t.deepEqual((await get(url('/jobs'), { authorization: `Bearer ${OPERATOR_TOKEN}` })).body.jobs?.map((j) => j.id), ['a', 'b']); // prettier-ignore
  const forbidden = await get(url('/jobs/b/checkpoints'), asReader);
  t.is(forbidden.status, 403);
  t.regex(forbidden.body.errors?.[0] ?? '', /"dashboards" \(reader on a, team-\*\) may not read job "b"/);
  const anonymous = await get(url('/jobs'));
  t.is(anonymous.status, 401);
  t.regex(anonymous.body.errors?.[0] ?? '', /neither a bearer token nor a client certificate/);
  t.is((await get(url('/jobs'), { authorization: 'Bearer nope-0123456789abcdef' })).status, 401);
});

test('with --http-tls the HTTP port serves HTTPS, and a client certificate identifies its caller', async (t) => {
  const s = await setup(t, { httpTls: 'on' });
  await s.c.client.submitJob({ spec: spec('a') });
  await s.c.client.submitJob({ spec: spec('b') });
  const url = `https://${s.c.running.httpAddress}/api/v1/jobs`;
  const worker = await get(url, {}, s.tlsAs('worker-a'));
  t.is(worker.status, 200);
  t.deepEqual(
    worker.body.jobs?.map((j) => j.id),
    ['a'],
    'a worker reads its own job',
  );
  t.is((await get(url, {}, { caFile: s.ca })).status, 401, 'no certificate, no token');
  t.is((await get(url, { authorization: `Bearer ${READER_TOKEN}` }, { caFile: s.ca })).status, 200);
  await t.throwsAsync(get(url.replace('https:', 'http:')), undefined, 'plain HTTP gets no answer');
  const health = await new Promise<number>((resolve, reject) => {
    httpsRequest(
      `https://${s.c.running.httpAddress}/healthz`,
      { ca: readFileSync(s.ca), servername: 'localhost' },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    )
      .on('error', reject)
      .end();
  });
  t.is(health, 200, 'probes need no credentials');
});

test('a policy that does not load stops the start, naming the file and the fault', async (t) => {
  const dir = await certDir(t);
  const file = join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({ principals: [{ name: 'x', roles: ['superuser'], token: { sha256: '0'.repeat(64) } }] })); // prettier-ignore
  const err = await t.throwsAsync(startTestCoordinator(t, servers, { accessPolicy: file }));
  t.regex(err?.message ?? '', /access policy: principal "x"\.roles: "superuser" is not a role/);
});
