/**
 * A coordinator and an SDK worker on a nats-server that requires TLS with
 * client certificates of its CA, and the users `renderNatsPermissions`
 * writes: the coordinator with a password from a file, the worker with an
 * NKey seed file. The job checkpoints; a client without a certificate is
 * refused, and one that trusts another CA fails at once.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { connectNats, loadNatsAuth } from '../../src/bus/index.js';
import { connect } from '@nats-io/transport-node';
import {
  renderNatsPermissions,
  startEtcd,
  startNats,
  workerInboxPrefix,
  type EtcdProcess,
  type NatsProcess,
} from '../../src/dev/index.js';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { ownServers } from '../helpers/servers.js';
import { countingSink, tickingSource } from './worker-harness.js';

const PREFIX = 'sec';
const COORDINATOR_PASSWORD = 'coordinator-test-password';
const workerKeys = nkeys.createUser();
let dir = '';
let pki: TestPki | undefined;
let etcd: EtcdProcess | undefined;
let nats: NatsProcess | undefined;
const servers = ownServers(() => ({ etcd, nats }));
const files = (): TestPki & { seed: string; password: string } => ({
  ...(pki as TestPki),
  seed: join(dir, 'worker.nk'),
  password: join(dir, 'coordinator.password'),
});

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-nats-security-'));
  pki = await makeTestPki(dir);
  await writeFile(files().seed, new TextDecoder().decode(workerKeys.getSeed()) + '\n');
  await writeFile(files().password, COORDINATOR_PASSWORD + '\n');
  const authorization = renderNatsPermissions({
    subjectPrefix: PREFIX,
    coordinator: { user: 'coordinator', password: COORDINATOR_PASSWORD },
    jobs: [{ jobId: 'J', credentials: { nkey: workerKeys.getPublicKey() } }],
  });
  const tls = `tls {\n  cert_file: "${pki.serverCert}"\n  key_file: "${pki.serverKey}"\n  ca_file: "${pki.ca}"\n  verify: true\n}\n`;
  const config = join(dir, 'nats.conf');
  await writeFile(config, authorization + tls);
  [etcd, nats] = await Promise.all([startEtcd(), startNats({ extraArgs: ['-c', config] })]);
});

test.after.always(async () => {
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

test('a client without a certificate is refused', async (t) => {
  const refused = await connect({
    servers: servers.natsUrl,
    user: 'coordinator',
    pass: COORDINATOR_PASSWORD,
    tls: { caFile: files().ca },
    timeout: 3000,
  }).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: unknown) => (err as Error).message,
  );
  t.log(`without a client certificate: ${refused}`);
  t.not(refused, 'connected');
});

test('coordinator (password file) and worker (NKey seed file) checkpoint over TLS', async (t) => {
  const { ca, clientCert, clientKey, seed, password } = files();
  const c = await startTestCoordinator(t, servers, {
    subjectPrefix: PREFIX,
    natsUser: 'coordinator',
    natsPasswordFile: password,
    natsTlsCaFile: ca,
    natsTlsCertFile: clientCert,
    natsTlsKeyFile: clientKey,
  });
  const jobId = 'J';
  const policy = { intervalMs: 200, retained: 3, tolerableFailures: -1 };
  await c.client.submitJob({
    spec: { jobId, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }], policy },
  });
  const stateDir = join(dir, 'state');
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir: stateDir, fsync: false }),
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    natsAuth: {
      nkeySeedFile: seed,
      tlsCaFile: ca,
      tlsCertFile: clientCert,
      tlsKeyFile: clientKey,
      inboxPrefix: workerInboxPrefix(jobId),
    },
  });
  worker.addTask('src', tickingSource(10)).addTask('sink', countingSink([]));
  t.teardown(() => worker.stop());
  await worker.start();
  const [first] = await worker.waitFor('complete', () => true, { timeoutMs: 20_000 });
  const [next] = await worker.waitFor('complete', (m) => m.checkpointId > first.checkpointId, { timeoutMs: 15_000 });
  t.true(next.checkpointId > first.checkpointId);
});

test('a connection whose CA does not vouch for the server fails at once, saying why', async (t) => {
  const other = await makeTestPki(await mkdtemp(join(dir, 'other-')));
  const { clientCert, clientKey } = files();
  const auth = loadNatsAuth(
    {
      user: 'coordinator',
      password: COORDINATOR_PASSWORD,
      tlsCaFile: other.ca,
      tlsCertFile: clientCert,
      tlsKeyFile: clientKey,
    },
    (field) => field,
  );
  const err = await t.throwsAsync(connectNats([servers.natsUrl], 'wrong-ca', { auth }));
  t.log(err?.message);
  t.regex(err?.message ?? '', /TLS: .*certificate/);

  // A client given no TLS options at all (a half-configured worker) fails alike, instead of waiting forever.
  const bare = await t.throwsAsync(connectNats([servers.natsUrl], 'no-tls', { auth: { user: 'coordinator', pass: COORDINATOR_PASSWORD } })); // prettier-ignore
  t.log(bare?.message);
  t.regex(bare?.message ?? '', /TLS: .*certificate/);
});
