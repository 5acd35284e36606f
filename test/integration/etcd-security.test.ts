/**
 * A coordinator on an etcd that speaks TLS only to clients with a
 * certificate of its CA and checks passwords: the store and the election
 * client both connect with the CA, the client certificate and the user's
 * password, the coordinator leads and its jobs are stored.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { freePort, startEtcd, startNats, type EtcdProcess, type NatsProcess } from '../../src/dev/index.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { ownServers } from '../helpers/servers.js';

const run = promisify(execFile);
const PASSWORD = 'etcd-test-password';
let dir = '';
let httpsUrl = '';
let etcd: EtcdProcess | undefined;
let nats: NatsProcess | undefined;
const servers = ownServers(() => ({ etcd, nats }));
let files: TestPki | undefined;
/** The PKI's files, once made. */
const pem = (): TestPki => files as TestPki;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-etcd-security-'));
  const pki = await makeTestPki(dir, 'no-such-user');
  files = pki;
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  httpsUrl = `https://127.0.0.1:${httpsPort}`;
  // Plain HTTP stays on loopback for the health check and the set-up below; the coordinator uses HTTPS.
  const extraArgs = [
    ['--listen-client-urls', `http://127.0.0.1:${httpPort},${httpsUrl}`],
    ['--advertise-client-urls', httpsUrl],
    ['--cert-file', pki.serverCert, '--key-file', pki.serverKey],
    ['--trusted-ca-file', pki.ca, '--client-cert-auth'],
  ].flat();
  [etcd, nats] = await Promise.all([startEtcd({ clientPort: httpPort, extraArgs }), startNats()]);
  const ctl = (...args: string[]): Promise<unknown> => run('etcdctl', ['--endpoints', etcd?.clientUrl ?? '', ...args]);
  await ctl('user', 'add', `root:${PASSWORD}-root`);
  await ctl('user', 'grant-role', 'root', 'root');
  await ctl('role', 'add', 'ckpt');
  await ctl('role', 'grant-permission', 'ckpt', '--prefix=true', 'readwrite', '/test-');
  await ctl('user', 'add', `ckpt:${PASSWORD}`);
  await ctl('user', 'grant-role', 'ckpt', 'ckpt');
  await ctl('auth', 'enable');
});

test.after.always(async () => {
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

test('without a password etcd refuses the client certificate alone', async (t) => {
  const client = new Etcd3({
    hosts: httpsUrl,
    credentials: {
      rootCertificate: await readFile(pem().ca),
      certChain: await readFile(pem().clientCert),
      privateKey: await readFile(pem().clientKey),
    },
  });
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.put('/test-x').value('1'));
  t.log(`etcd: ${err?.message}`);
});

test('store and election reach etcd over TLS with a client certificate and a password', async (t) => {
  const c = await startTestCoordinator(t, servers, {
    etcd: [httpsUrl],
    etcdUser: 'ckpt',
    etcdPassword: PASSWORD,
    etcdTlsCaFile: pem().ca,
    etcdTlsCertFile: pem().clientCert,
    etcdTlsKeyFile: pem().clientKey,
  });
  await c.running.whenLeader(15_000);
  await c.client.submitJob({ spec: { jobId: 'tls', tasks: [{ taskId: 'a' }] } });
  const { job } = await c.client.getJob({ jobId: 'tls' });
  t.is(job?.spec?.jobId, 'tls');
  t.truthy(c.running.term, 'the election client campaigned and won');
});
