/**
 * Creds files (user JWT and NKey seed) against a real nats-server in
 * operator mode, with the operator, accounts and users of `issueNatsJwts`:
 * a coordinator and an SDK worker, each with its creds file, checkpoint a
 * job whose snapshots go to the worker's JetStream object store bucket.
 * The server enforces the users' JWT permissions (a forged Recover of the
 * worker's user is refused) and refuses a user of an account the operator
 * does not know and a JWT changed after signing. A creds file that cannot
 * be read fails the start, naming the option, before anything connects.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nkeys } from '@nats-io/nats-core';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { connectNats, controlMessageCodecs, epochHeaders, jobSubjects, loadNatsAuth } from '../../src/bus/index.js';
import { resolveConfig } from '../../src/config/index.js';
import {
  issueNatsJwts,
  renderCredsFile,
  startEtcd,
  startNats,
  userJwt,
  workerInboxPrefix,
  workerPermissions,
  type EtcdProcess,
  type NatsJwtDeployment,
  type NatsProcess,
} from '../../src/dev/index.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, createObjectStoreBackend, Worker, type Task } from '../../src/sdk/index.js';
import { runCoordinator } from '../../src/server/run.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { ownServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, MemoryLog, tickingSource } from './worker-harness.js';

const PREFIX = 'jwt';
const JOB = 'J';
const BUCKET = 'state-J';

let dir = '';
let deployment: NatsJwtDeployment | undefined;
let etcd: EtcdProcess | undefined;
let nats: NatsProcess | undefined;
const servers = ownServers(() => ({ etcd, nats }));
const files = (): { config: string; coordinator: string; worker: string } => ({
  config: join(dir, 'nats.conf'),
  coordinator: join(dir, 'coordinator.creds'),
  worker: join(dir, 'worker-J.creds'),
});

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-nats-jwt-'));
  deployment = issueNatsJwts({ subjectPrefix: PREFIX, jobs: [{ jobId: JOB, stateBucket: BUCKET }] });
  const workerCreds = deployment.workerCreds.get(JOB);
  if (workerCreds === undefined) throw new Error('no creds file for the worker of J');
  const { config, coordinator, worker } = files();
  await writeFile(config, deployment.serverConfig);
  await writeFile(coordinator, deployment.coordinatorCreds.reveal(), { mode: 0o600 });
  await writeFile(worker, workerCreds.reveal(), { mode: 0o600 });
  [etcd, nats] = await Promise.all([startEtcd(), startNats({ extraArgs: ['-c', config] })]);
});

test.after.always(async () => {
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** What a connection with the creds file `path` ends in: `connected`, or the server's refusal. */
async function tryCreds(path: string): Promise<string> {
  const auth = loadNatsAuth({ credsFile: path, inboxPrefix: workerInboxPrefix(JOB) }, (f) => f);
  return connect({ servers: servers.natsUrl, ...auth, maxReconnectAttempts: 0, timeout: 5000 }).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: unknown) => (err as Error).message,
  );
}

/** A connection as the worker user of J, whose server errors land in `errors`. */
async function connectAsWorker(t: ExecutionContext, errors: string[]): Promise<NatsConnection> {
  const auth = loadNatsAuth({ credsFile: files().worker, inboxPrefix: workerInboxPrefix(JOB) }, (f) => f);
  const nc = await connect({ servers: servers.natsUrl, ...auth, name: 'forger' });
  t.teardown(() => nc.close());
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(s.error.message);
  })();
  return nc;
}

/** The server's count of client connections since it started. */
async function totalConnections(): Promise<number> {
  const varz = (await (await fetch(`${servers.nats.monitorUrl}/varz`)).json()) as { total_connections?: number };
  if (typeof varz.total_connections !== 'number') throw new Error('/varz has no total_connections');
  return varz.total_connections;
}

test.serial('a creds file that cannot be read fails the start naming the option, before connecting', async (t) => {
  const before = await totalConnections();
  const missing = join(dir, 'missing.creds');
  const config = resolveConfig(
    { etcd: [servers.etcdUrl], nats: [servers.natsUrl], listen: '127.0.0.1:0', natsCredsFile: missing },
    {},
  );
  const coordinator = await t.throwsAsync(runCoordinator(config, silentLogger()));
  t.regex(coordinator?.message ?? '', /^MALFORMED: natsCredsFile \(CKPT_NATS_CREDS_FILE\): cannot read .*ENOENT/);
  const state = await createLocalDirectoryBackend({ dir: join(dir, 'state'), fsync: false });
  const natsAuth = { credsFile: missing };
  const worker = t.throws(
    () => new Worker({ coordinator: '127.0.0.1:1', nats: [servers.natsUrl], jobId: JOB, state, natsAuth }),
  );
  t.regex(worker?.message ?? '', /^MALFORMED: natsAuth\.credsFile: cannot read .*missing\.creds \(ENOENT\)/);
  t.is(await totalConnections(), before, 'nothing connected to the server');
});

test('nats-server accepts the operator configuration', async (t) => {
  const { stdout, stderr } = await promisify(execFile)('nats-server', ['-t', '-c', files().config]);
  t.regex(stdout + stderr, /is valid/);
});

test('coordinator and worker checkpoint with creds files; the worker user cannot forge a recovery', async (t) => {
  const c = await startTestCoordinator(t, servers, { subjectPrefix: PREFIX, natsCredsFile: files().coordinator });
  // No periodic checkpoints: the test triggers each one.
  const policy = { intervalMs: 0, retained: 3, tolerableFailures: -1 };
  await c.client.submitJob({
    spec: { jobId: JOB, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }], policy },
  });
  // The snapshots go to the worker user's bucket, over a connection with its creds file.
  const stateNc = await connectNats([servers.natsUrl], 'state-J', {
    auth: loadNatsAuth({ credsFile: files().worker, inboxPrefix: workerInboxPrefix(JOB) }, (f) => f),
  });
  t.teardown(() => stateNc.close());
  const log = new MemoryLog('info');
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId: JOB,
    workerId: 'w',
    state: await createObjectStoreBackend({ connection: stateNc, bucket: BUCKET, storage: 'memory' }),
    logger: log.logger,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    natsAuth: { credsFile: files().worker },
  });
  // The sink has state (so a piece in the bucket) once it counted a record.
  const counting = countingSink([]);
  let received = 0;
  const sinkTask: Task = {
    ...counting,
    process(record, ctx) {
      received += 1;
      return counting.process(record, ctx);
    },
  };
  worker.addTask('src', tickingSource(10)).addTask('sink', sinkTask);
  t.teardown(() => worker.stop());
  await worker.start();
  await c.started(JOB);
  await eventually(() => received > 0, { what: "the sink's first record" });
  const first = await c.client.triggerCheckpoint({ jobId: JOB, wait: true }, { deadlineMs: 20_000 });
  t.is(first.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const id = first.checkpoint?.checkpointId ?? 0;
  const { manifest } = await c.query.getCheckpoint({ jobId: JOB, checkpointId: id });
  const sink = manifest?.tasks.find((task) => task.taskId === 'sink')?.state?.uri ?? '';
  t.log(`checkpoint ${id}: the sink's state is ${sink}`);
  t.regex(sink, new RegExp(`^nats-obj://${BUCKET}/${JOB}/sink/${id}-`), "the sink's state is in J's bucket");

  const errors: string[] = [];
  const forger = await connectAsWorker(t, errors);
  const subjects = jobSubjects(worker.welcome?.controlSubjectPrefix ?? '');
  const epoch = worker.epoch;
  const { term = 0 } = worker.welcome ?? {};
  const recover = controlMessageCodecs().recover.encode({ jobId: JOB, epoch: epoch + 1, term, checkpointId: 0 });
  forger.publish(subjects.recover, recover, { headers: epochHeaders(epoch + 1) });
  await forger.flush();
  await eventually(() => errors.length >= 1, { what: 'the refusal' });
  t.log(`refused: ${errors.join('; ')}`);
  t.true(
    errors.some((e) => /permissions violation for publish/i.test(e) && e.includes(`${PREFIX}.${JOB}.recover`)),
    'the recover publish is refused',
  );

  const next = await c.client.triggerCheckpoint({ jobId: JOB, wait: true }, { deadlineMs: 20_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true((next.checkpoint?.checkpointId ?? 0) > id);
  t.is(worker.epoch, epoch, 'no recovery happened');
  t.false(
    log.lines.some((l) => l.level >= 50),
    'the worker logged no error',
  );
});

test('a user JWT signed by an account the operator does not know is refused', async (t) => {
  const stranger = nkeys.createAccount();
  const user = nkeys.createUser();
  const jwt = userJwt(stranger, user.getPublicKey(), 'stranger', workerPermissions(PREFIX, { jobId: JOB }));
  const path = join(dir, 'stranger.creds');
  await writeFile(path, renderCredsFile(jwt, user.getSeed()).reveal(), { mode: 0o600 });
  t.is(await tryCreds(files().worker), 'connected', "the worker's own creds file connects");
  const refused = await tryCreds(path);
  t.log(`unknown account: ${refused}`);
  t.regex(refused, /Authorization Violation/i);
});

test('a creds file whose JWT was changed after signing is refused', async (t) => {
  const creds = deployment?.workerCreds.get(JOB)?.reveal() ?? '';
  const jwt = /-----BEGIN NATS USER JWT-----\n(\S+)\n/.exec(creds)?.[1] ?? '';
  const [header = '', claims = '', signature = ''] = jwt.split('.');
  const decoded = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as { nats: object };
  const widened = { ...decoded, nats: { ...decoded.nats, pub: { allow: ['>'] } } };
  const tampered = `${header}.${Buffer.from(JSON.stringify(widened)).toString('base64url')}.${signature}`;
  t.not(tampered, jwt);
  const path = join(dir, 'tampered.creds');
  await writeFile(path, creds.replace(jwt, tampered), { mode: 0o600 });
  const refused = await tryCreds(path);
  t.log(`tampered JWT: ${refused}`);
  t.regex(refused, /Authorization Violation/i);
});
