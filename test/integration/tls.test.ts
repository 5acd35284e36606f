/**
 * TLS of the gRPC API against real coordinators, etcd and NATS, with
 * certificates made by openssl for each test: server TLS and mutual TLS,
 * the refusals a client gets without the right CA or certificate, the
 * reload of changed files, the CLI and an SDK worker over TLS, bad files
 * at start-up, and which leaders a client follows.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import {
  createCoordinatorClient,
  createQueryClient,
  errorInfo,
  type ClientTlsOptions,
} from '../../src/client/index.js';
import { CkptError } from '../../src/core/errors.js';
import { createLocalDirectoryBackend, Worker } from '../../src/sdk/index.js';
import { certDir, makeCa, type CertFiles, type TestCa } from '../helpers/certs.js';
import { CLI } from '../helpers/cli.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, MemoryLog, tickingSource } from './worker-harness.js';

const servers = useServers();
const run = promisify(execFile);

/** The name every coordinator's certificate is valid for, besides localhost and 127.0.0.1. */
const CLUSTER_NAME = 'ckpt.cluster';
/** Calls that must fail do so at once, without retrying. */
const ONCE = { retry: { timeoutMs: 0 } };

interface Pki {
  dir: string;
  ca: TestCa;
  server: CertFiles & { serial: string };
  client: CertFiles;
}

async function pki(t: ExecutionContext): Promise<Pki> {
  const dir = await certDir(t);
  const ca = await makeCa(dir, 'ca');
  const [server, client] = await Promise.all([
    ca.issue('server', ['localhost', '127.0.0.1', CLUSTER_NAME]),
    ca.issue('client', ['worker']),
  ]);
  return { dir, ca, server, client };
}

/** The serial number of the certificate the server at `address` presents to a new connection. */
function servedSerial(address: string, caFile: string): Promise<string> {
  const split = address.lastIndexOf(':');
  const [host, port] = [address.slice(0, split), Number(address.slice(split + 1))];
  const ca = readFileSync(caFile);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, servername: 'localhost', ca, ALPNProtocols: ['h2'] });
    socket.once('secureConnect', () => {
      resolve(socket.getPeerCertificate().serialNumber.toUpperCase().replace(/^0+/, ''));
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

test('a client with the CA connects over TLS; without it, or over plaintext, it fails clearly', async (t) => {
  const p = await pki(t);
  const tls: ClientTlsOptions = { caFile: p.ca.cert };
  const c = await startTestCoordinator(t, servers, { tlsCert: p.server.cert, tlsKey: p.server.key }, { tls });
  await c.client.submitJob({ spec: { jobId: 'job', tasks: [{ taskId: 'a' }] } });
  t.deepEqual(
    (await c.query.listJobs()).jobs.map((j) => j.spec?.jobId),
    ['job'],
  );

  const systemCas = createQueryClient(c.address, { ...ONCE, tls: true });
  t.teardown(() => systemCas.close());
  const untrusted = await t.throwsAsync(systemCas.listJobs({}, { deadlineMs: 5000 }));
  t.is(errorInfo(untrusted)?.code, grpc.status.UNAVAILABLE);
  t.regex(untrusted.message, /certificate/i, 'the error says the certificate was not trusted');

  const plaintext = createQueryClient(c.address, ONCE);
  t.teardown(() => plaintext.close());
  t.is(errorInfo(await t.throwsAsync(plaintext.listJobs({}, { deadlineMs: 5000 })))?.code, grpc.status.UNAVAILABLE);

  t.throws(() => createQueryClient(c.address, { tls: { caFile: join(p.dir, 'none.pem') } }), {
    instanceOf: CkptError,
    message: /tls\.caFile: .*none\.pem cannot be read \(ENOENT\)/,
  });
});

test('mutual TLS refuses a client without a certificate and one signed by another CA; a standby forwards over it', async (t) => {
  const p = await pki(t);
  const other = await makeCa(p.dir, 'other');
  const stranger = await other.issue('stranger', ['worker']);
  const good: ClientTlsOptions = { caFile: p.ca.cert, certFile: p.client.cert, keyFile: p.client.key };
  const c = await startTestCoordinator(
    t,
    servers,
    { tlsCert: p.server.cert, tlsKey: p.server.key, tlsClientCa: p.ca.cert },
    { tls: good },
  );
  t.deepEqual((await c.query.listJobs()).jobs, []);
  for (const tls of [{ caFile: p.ca.cert }, { caFile: p.ca.cert, certFile: stranger.cert, keyFile: stranger.key }]) {
    const refused = createQueryClient(c.address, { ...ONCE, tls });
    t.teardown(() => refused.close());
    t.is(errorInfo(await t.throwsAsync(refused.listJobs({}, { deadlineMs: 5000 })))?.code, grpc.status.UNAVAILABLE);
  }

  // A standby forwards the dashboard's queries to the leader, presenting its own certificate.
  await c.client.submitJob({ spec: { jobId: 'job', tasks: [{ taskId: 'a' }] } });
  const standby = await c.standby();
  const forwarded = await eventually(
    async () => {
      const r = await fetch(`http://${standby.httpAddress}/api/v1/jobs`);
      const body = (await r.json()) as { served_by?: string; jobs?: Array<{ id: string }> };
      return r.status === 200 ? body : undefined;
    },
    { what: 'the standby forwarding to the leader' },
  );
  t.like(forwarded, { served_by: 'leader', jobs: [{ id: 'job' }] });
});

test('changed certificate files serve new connections; a bad file keeps the certificate in use', async (t) => {
  const p = await pki(t);
  const log = new MemoryLog('info');
  const c = await startTestCoordinator(
    t,
    servers,
    { tlsCert: p.server.cert, tlsKey: p.server.key, tlsReloadIntervalMs: 100 },
    { tls: { caFile: p.ca.cert }, logger: log.logger },
  );
  t.is(await servedSerial(c.address, p.ca.cert), p.server.serial);

  const renewed = await p.ca.issue('renewed', ['localhost', '127.0.0.1']);
  await copyFile(renewed.key, p.server.key);
  await copyFile(renewed.cert, p.server.cert);
  await eventually(async () => (await servedSerial(c.address, p.ca.cert)) === renewed.serial, {
    what: 'the renewed certificate served',
  });
  t.deepEqual((await c.query.listJobs()).jobs, [], 'a client still connects');

  await writeFile(p.server.cert, 'not a certificate\n');
  await log.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('TLS files not reloaded'));
  t.is(await servedSerial(c.address, p.ca.cert), renewed.serial);
  t.false(
    log.lines.some((l) => JSON.stringify(l).includes('PRIVATE KEY')),
    'no key in the log',
  );
});

/** How long a coordinator started with a bad TLS file may take to refuse. */
const REFUSAL_TIMEOUT_MS = 120_000;

test('the CLI talks TLS; a coordinator with a bad TLS file refuses to start, naming it', async (t) => {
  const p = await pki(t);
  const c = await startTestCoordinator(
    t,
    servers,
    { tlsCert: p.server.cert, tlsKey: p.server.key },
    { tls: { caFile: p.ca.cert } },
  );
  await c.client.submitJob({ spec: { jobId: 'job', tasks: [{ taskId: 'a' }] } });
  const { stdout } = await run('node', [...CLI, '--address', c.address, '--tls-ca', p.ca.cert, '--json', 'jobs'], {
    timeout: 30_000,
  });
  t.deepEqual(
    (JSON.parse(stdout) as Array<{ spec: { jobId: string } }>).map((j) => j.spec.jobId),
    ['job'],
  );

  const keyBody = readFileSync(p.server.key, 'latin1').split('\n')[1] ?? '';
  const garbage = join(p.dir, 'garbage.pem');
  await writeFile(garbage, 'hello\n');
  const cases: Array<[args: string[], says: RegExp]> = [
    [['--tls-cert', join(p.dir, 'missing.pem'), '--tls-key', p.server.key], /missing\.pem cannot be read \(ENOENT\)/],
    [['--tls-cert', garbage, '--tls-key', p.server.key], /garbage\.pem holds no PEM certificate/],
    [['--tls-cert', p.server.cert, '--tls-key', garbage], /garbage\.pem is not a PEM private key/],
    [['--tls-cert', p.server.cert, '--tls-key', p.client.key], /client\.key is not the private key of the certificate/],
  ];
  // Side by side: each start compiles the CLI, which on a loaded machine takes a while.
  const outcomes = await Promise.all(
    cases.map(([args]) =>
      run(
        'node',
        [
          ...CLI,
          'coordinator',
          '--etcd',
          servers.etcdUrl,
          '--nats',
          servers.natsUrl,
          '--listen',
          '127.0.0.1:0',
          ...args,
        ],
        { timeout: REFUSAL_TIMEOUT_MS },
      ).then(
        () => undefined,
        (err: unknown) => err as { code: number | null; killed?: boolean; stderr: string },
      ),
    ),
  );
  for (const [i, [args, says]] of cases.entries()) {
    const failed = outcomes[i];
    t.truthy(failed, `${args.join(' ')} refused`);
    t.false(failed?.killed ?? false, `${args.join(' ')}: no answer within ${REFUSAL_TIMEOUT_MS} ms`);
    t.not(failed?.code, 0);
    t.regex(failed?.stderr ?? '', says);
    t.notRegex(failed?.stderr ?? '', /\n\s+at /, 'no stack trace');
    t.false((failed?.stderr ?? '').includes(keyBody), 'no key in the message');
  }
});

test('an SDK worker checkpoints over mutual TLS', async (t) => {
  const p = await pki(t);
  const tls: ClientTlsOptions = { caFile: p.ca.cert, certFile: p.client.cert, keyFile: p.client.key };
  const c = await startTestCoordinator(
    t,
    servers,
    { tlsCert: p.server.cert, tlsKey: p.server.key, tlsClientCa: p.ca.cert },
    { tls },
  );
  await c.client.submitJob({
    spec: { jobId: 'job', tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }] },
  });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  const w = new Worker({ coordinator: c.address, nats: [servers.natsUrl], jobId: 'job', workerId: 'w', state, tls });
  w.addTask('src', tickingSource(10)).addTask('sink', countingSink([]));
  t.teardown(() => w.stop());
  await w.start();
  await c.started('job');
  const res = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 20_000 });
  t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
});

test('a client follows a leader it was not given only when TLS checks the cluster name', async (t) => {
  const p = await pki(t);
  const spec = { jobId: 'job', tasks: [{ taskId: 'a' }] };

  // Plaintext: a standby names the leader, which the client was not given.
  const plain = await startTestCoordinator(t, servers);
  const plainStandby = await plain.standby();
  const viaStandby = createCoordinatorClient(plainStandby.address, { retry: { timeoutMs: 5000 } });
  t.teardown(() => viaStandby.close());
  const refused = await t.throwsAsync(viaStandby.submitJob({ spec }));
  t.true(refused instanceof CkptError);
  t.like(refused, { reason: 'NOT_LEADER', leader: plain.address });
  t.regex(refused.message, /not among the coordinator addresses given/);
  t.deepEqual(viaStandby.addresses, [plainStandby.address], 'the named leader was never called');
  t.deepEqual((await plain.query.listJobs()).jobs, [], 'nothing was submitted');

  // Given both, it follows.
  const both = createCoordinatorClient([plainStandby.address, plain.address]);
  t.teardown(() => both.close());
  t.true((await both.submitJob({ spec })).created);

  // TLS with the cluster's name: it follows the leader it was not given.
  const tls: ClientTlsOptions = { caFile: p.ca.cert, serverName: CLUSTER_NAME };
  const secure = await startTestCoordinator(t, servers, { tlsCert: p.server.cert, tlsKey: p.server.key }, { tls });
  const secureStandby = await secure.standby();
  const named = createCoordinatorClient(secureStandby.address, { tls });
  t.teardown(() => named.close());
  t.true((await named.submitJob({ spec })).created);
  t.is(named.address, secure.address);
});
