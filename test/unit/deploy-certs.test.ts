/**
 * deploy/kubernetes/certs/make-certs.sh and the Job etcd-auth-setup: the
 * certificates the script makes chain to their CAs, serve the names the
 * rendered manifests connect to and carry the common names the access
 * policy names; the overlay it writes replaces every placeholder Secret;
 * running it again renews certificates and keeps CAs and secrets; and the
 * Job's script, with the Job's environment, turns on authentication of a
 * real etcd that serves the script's certificates, so that the
 * coordinators' user reaches /ckpt/ and nothing else.
 * Without kubectl the tests are skipped, and say so in their titles.
 */
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { freePort, startEtcd, type EtcdProcess } from '../../src/dev/index.js';
import {
  KUBERNETES_DIR,
  containersOf,
  fileProblems,
  hasKubectl,
  makeScratch,
  missingReferences,
  podsOf,
  removeScratch,
  renderKustomization,
  type KubeObject,
  type PodSpec,
} from '../helpers/kubernetes-manifests.js';
import { runTool } from '../helpers/run-tool.js';

const SCRIPT = join(KUBERNETES_DIR, 'certs/make-certs.sh');
const kubectl = await hasKubectl();
const run = kubectl ? test.serial : test.skip;
const skipped = kubectl ? '' : ' (skipped: kubectl is not installed)';

const scratch = kubectl ? await makeScratch() : '';
if (kubectl) test.after.always(() => removeScratch(scratch));
const out = join(scratch, 'secrets');

/** The TLS Secrets the script makes, by whether their certificate serves, is a client, or both. */
const SERVERS = ['coordinator-tls', 'etcd-server-tls', 'nats-server-tls'];
const CLIENTS = [
  'coordinator-peer-tls',
  'operator-tls',
  'worker-wordcount-tls',
  'etcd-client-tls',
  'etcd-admin-tls',
  'etcd-server-tls',
  'nats-server-tls',
];

/** The word count example, rendered once. */
let example: Promise<KubeObject[]> | undefined;
const exampleObjects = (): Promise<KubeObject[]> => (example ??= renderKustomization('examples/wordcount', scratch));

async function openssl(...args: string[]): Promise<string> {
  const result = await runTool('openssl', args);
  if (!result.ok) throw new Error(`openssl ${args.join(' ')}:\n${result.out}`);
  return result.out;
}

const subjectOf = async (cert: string): Promise<string> => openssl('x509', '-noout', '-subject', '-in', cert);
const matchesHost = async (cert: string, host: string): Promise<boolean> =>
  (await openssl('x509', '-noout', '-checkhost', host, '-in', cert)).includes('does match');

/** The value of `--flag=value` among `args`. */
function flag(args: readonly string[] | undefined, name: string): string[] {
  return (args ?? []).filter((a) => a.startsWith(`${name}=`)).map((a) => a.slice(name.length + 1));
}

/** The hosts of a comma-separated URL list (or host:port list). */
function hosts(list: string): string[] {
  return list.split(',').map((u) => u.replace(/^\w+:\/\//, '').replace(/:\d+$/, ''));
}

/** Every name the manifests reach each server by, `$(POD_NAME)` and `$(POD_NAMESPACE)` filled in for each replica. */
async function namesUsed(): Promise<Record<string, string[]>> {
  const objects = await exampleObjects();
  const names: Record<string, Set<string>> = {
    'coordinator-tls': new Set(),
    'etcd-server-tls': new Set(),
    'nats-server-tls': new Set(),
  };
  const add = (secret: string, values: readonly string[]): void => {
    for (const v of values) names[secret]?.add(v);
  };
  for (const { container } of containersOf(objects)) {
    const c = container as Omit<typeof container, 'env'> & { env?: Array<{ name: string; value?: string }> };
    const env = new Map((c.env ?? []).map((e) => [e.name, e.value ?? '']));
    add('coordinator-tls', flag(c.args, '--peer-tls-server-name'));
    add('coordinator-tls', flag(c.args, '--tls-server-name'));
    add(
      'coordinator-tls',
      [env.get('CKPT_TLS_SERVER_NAME') ?? ''].filter((v) => v !== ''),
    );
    add('coordinator-tls', flag(c.args, '--coordinator').flatMap(hosts));
    add('coordinator-tls', flag(c.args, '--address').flatMap(hosts));
    add('etcd-server-tls', flag(c.args, '--etcd').flatMap(hosts));
    add(
      'etcd-server-tls',
      hosts(env.get('ETCDCTL_ENDPOINTS') ?? '').filter((h) => h !== ''),
    );
    add('nats-server-tls', flag(c.args, '--nats').flatMap(hosts));
  }
  for (const o of objects.filter((x) => x.kind === 'StatefulSet')) {
    const spec = o['spec'] as { replicas: number; template: { spec: PodSpec } };
    const container = spec.template.spec.containers[0];
    const env = container?.env ?? [];
    for (let i = 0; i < spec.replicas; i++) {
      const fill = (s: string): string =>
        s.replaceAll('$(POD_NAME)', `${o.metadata.name}-${i}`).replaceAll('$(POD_NAMESPACE)', 'ckpt');
      if (o.metadata.name === 'etcd') {
        add('etcd-server-tls', flag(container?.args, '--advertise-client-urls').map(fill).flatMap(hosts));
        add('etcd-server-tls', flag(container?.args, '--initial-advertise-peer-urls').map(fill).flatMap(hosts));
      }
      if (o.metadata.name === 'nats') {
        const advertise = env.find((e) => e.name === 'CLIENT_ADVERTISE')?.value;
        if (advertise !== undefined) add('nats-server-tls', hosts(fill(advertise)));
      }
    }
  }
  const natsConf = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('nats-config'));
  const routes = (natsConf?.['data'] as Record<string, string>)['nats.conf'] ?? '';
  add(
    'nats-server-tls',
    [...routes.matchAll(/nats:\/\/([\w.-]+):6222/g)].map((m) => m[1] ?? ''),
  );
  return Object.fromEntries(Object.entries(names).map(([k, v]) => [k, [...v]]));
}

run(`make-certs.sh runs and writes an overlay that replaces every placeholder Secret${skipped}`, async (t) => {
  const made = await runTool('bash', [SCRIPT, out]);
  t.true(made.ok, made.out);
  const objects = await renderKustomization(relative(KUBERNETES_DIR, out), scratch);
  const secrets = objects.filter((o) => o.kind === 'Secret');
  const placeholders = (await exampleObjects()).filter((o) => o.kind === 'Secret').map((o) => o.metadata.name);
  t.deepEqual(secrets.map((o) => o.metadata.name).sort(), [...placeholders].sort(), 'the same Secrets, same names');
  for (const secret of secrets) {
    const data = (secret['data'] as Record<string, string> | undefined) ?? {};
    t.true(Object.keys(data).length > 0, `${secret.metadata.name} has data`);
    for (const [key, value] of Object.entries(data)) {
      const text = Buffer.from(value, 'base64').toString();
      t.false(text.includes('REPLACE'), `${secret.metadata.name}/${key} is no placeholder`);
    }
  }
  t.deepEqual(missingReferences(objects), []);
  t.deepEqual(fileProblems(objects), []);
});

run(`every certificate chains to its own CA alone, for its use${skipped}`, async (t) => {
  const cas = await Promise.all(['grpc', 'etcd', 'nats'].map((ca) => readFile(join(out, 'ca', `${ca}.crt`), 'utf8')));
  t.is(new Set(cas).size, 3, 'three CAs');
  for (const [names, purpose] of [
    [SERVERS, 'sslserver'],
    [CLIENTS, 'sslclient'],
  ] as const) {
    for (const secret of names) {
      const dir = join(out, secret);
      const verified = await runTool('openssl', [
        ...['verify', '-purpose', purpose, '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')],
      ]);
      t.true(verified.ok, `${secret} (${purpose}): ${verified.out}`);
      for (const ca of ['grpc', 'etcd', 'nats']) {
        if ((await readFile(join(dir, 'ca.crt'), 'utf8')) === (await readFile(join(out, 'ca', `${ca}.crt`), 'utf8')))
          continue;
        const other = await runTool('openssl', [
          'verify',
          '-CAfile',
          join(out, 'ca', `${ca}.crt`),
          join(dir, 'tls.crt'),
        ]);
        t.false(other.ok, `${secret} does not verify with the ${ca} CA`);
      }
      const key = await runTool('openssl', ['pkey', '-in', join(dir, 'tls.key'), '-pubout']);
      const cert = await runTool('openssl', ['x509', '-in', join(dir, 'tls.crt'), '-noout', '-pubkey']);
      t.is(key.stdout, cert.stdout, `${secret}: tls.key is the certificate's key`);
    }
  }
});

run(`server certificates hold every name the manifests reach their server by${skipped}`, async (t) => {
  const used = await namesUsed();
  t.true((used['coordinator-tls'] ?? []).includes('ckpt-coordinator.ckpt.svc'));
  t.true((used['etcd-server-tls'] ?? []).includes('etcd-0.etcd.ckpt.svc'));
  t.true((used['nats-server-tls'] ?? []).includes('nats-2.nats-headless.ckpt.svc'));
  for (const [secret, names] of Object.entries(used)) {
    t.true(names.length >= 2, `${secret}: names were found`);
    for (const name of names)
      t.true(await matchesHost(join(out, secret, 'tls.crt'), name), `${secret} is valid for ${name}`);
  }
  t.false(await matchesHost(join(out, 'coordinator-tls', 'tls.crt'), 'nats'), 'and not for other servers');
});

run(`client certificates carry the common names the access policy and etcd expect${skipped}`, async (t) => {
  const objects = await exampleObjects();
  const policy = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('ckpt-access-policy'));
  const { principals } = JSON.parse((policy?.['data'] as Record<string, string>)['access-policy.json'] ?? '{}') as {
    principals: Array<{ certificate?: { commonName?: string } }>;
  };
  const grpcClients = ['coordinator-peer-tls', 'operator-tls', 'worker-wordcount-tls'];
  const names = await Promise.all(grpcClients.map((s) => subjectOf(join(out, s, 'tls.crt'))));
  const commonNames = principals.flatMap((p) => (p.certificate?.commonName ? [p.certificate.commonName] : []));
  t.true(commonNames.length >= 3);
  for (const cn of commonNames)
    t.true(
      names.some((n) => n.includes(`CN = ${cn}\n`) || n.trim().endsWith(`CN = ${cn}`)),
      `a client certificate has CN=${cn}`,
    );
  // etcd takes a certificate's CN as the user of a request without a password: no certificate may name a user.
  const job = podsOf(objects).find(({ owner }) => owner === 'Job/etcd-auth-setup');
  const etcdUser = job?.pod.containers[0]?.env?.find((e) => e.name === 'ETCD_USER')?.value;
  t.is(etcdUser, 'ckpt');
  for (const secret of ['etcd-client-tls', 'etcd-admin-tls', 'etcd-server-tls']) {
    const subject = await subjectOf(join(out, secret, 'tls.crt'));
    t.false(/CN = (ckpt|root)\s*$/.test(subject), `${secret}'s CN is no etcd user: ${subject}`);
  }
});

run(`run again, make-certs.sh renews every certificate and keeps the CAs and the secrets${skipped}`, async (t) => {
  const read = (path: string): Promise<string> => readFile(join(out, path), 'utf8');
  const before = await Promise.all(
    ['ca/grpc.crt', 'secrets/etcd-auth/ckpt-password', 'coordinator-tls/tls.crt'].map(read),
  );
  const again = await runTool('bash', [SCRIPT, out]);
  t.true(again.ok, again.out);
  const after = await Promise.all(
    ['ca/grpc.crt', 'secrets/etcd-auth/ckpt-password', 'coordinator-tls/tls.crt'].map(read),
  );
  t.is(after[0], before[0], 'the CA is kept');
  t.is(after[1], before[1], 'the password is kept');
  t.not(after[2], before[2], 'the certificate is new');
  t.regex(after[1] ?? '', /^[0-9a-f]{64}$/, 'a password of 64 hex digits and no newline');
});

let etcd: EtcdProcess | undefined;
if (kubectl) test.after.always(() => etcd?.stop());

run(
  `the Job etcd-auth-setup's script, twice, on an etcd with these certificates and JWT auth tokens: its user reaches /ckpt/ alone${skipped}`,
  async (t) => {
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const httpsUrl = `https://127.0.0.1:${httpsPort}`;
    const server = join(out, 'etcd-server-tls');
    // The members' auth tokens: the StatefulSet's --auth-token, its key pair from the script's output.
    const member = podsOf(await exampleObjects()).find(({ owner }) => owner === 'StatefulSet/etcd');
    const authToken = member?.pod.containers[0]?.args?.find((a) => a.startsWith('--auth-token='));
    if (authToken === undefined) return t.fail('the etcd StatefulSet sets no --auth-token');
    t.regex(authToken, /^--auth-token=jwt,/);
    etcd = await startEtcd({
      clientPort: httpPort,
      extraArgs: [
        ...['--listen-client-urls', `http://127.0.0.1:${httpPort},${httpsUrl}`, '--advertise-client-urls', httpsUrl],
        ...['--cert-file', join(server, 'tls.crt'), '--key-file', join(server, 'tls.key')],
        ...['--trusted-ca-file', join(server, 'ca.crt'), '--client-cert-auth'],
        authToken.replaceAll('/etc/etcd/jwt/', `${join(out, 'secrets', 'etcd-jwt')}/`),
      ],
    });
    // The Job's container, its mounts mapped onto the script's output and the repository.
    const job = podsOf(await exampleObjects()).find(({ owner }) => owner === 'Job/etcd-auth-setup');
    const container = job?.pod.containers[0];
    if (job === undefined || container === undefined) return t.fail('no Job etcd-auth-setup');
    const local = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const volume = job.pod.volumes?.find((v) => v.name === m.name);
      if (volume?.configMap) local.set(m.mountPath, join(KUBERNETES_DIR, 'base'));
      else if (volume?.secret) {
        const name = volume.secret.secretName;
        local.set(m.mountPath, name.endsWith('-tls') ? join(out, name) : join(out, 'secrets', name));
      }
    }
    const map = (value: string): string => {
      for (const [mount, dir] of local) if (value.startsWith(`${mount}/`)) return dir + value.slice(mount.length);
      return value;
    };
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
    for (const e of container.env ?? []) env[e.name] = map(e.value ?? '');
    env['ETCDCTL_ENDPOINTS'] = httpsUrl;
    const command = (container.command ?? []).map(map);
    for (const attempt of ['first', 'second']) {
      const setup = await runTool(command[0] ?? 'sh', command.slice(1), { env });
      t.true(setup.ok, `${attempt} run: ${setup.out}`);
    }

    const tls = join(out, 'etcd-client-tls');
    const credentials = {
      rootCertificate: await readFile(join(tls, 'ca.crt')),
      certChain: await readFile(join(tls, 'tls.crt')),
      privateKey: await readFile(join(tls, 'tls.key')),
    };
    const password = await readFile(join(out, 'secrets/etcd-auth/ckpt-password'), 'utf8');
    const coordinator = new Etcd3({ hosts: httpsUrl, credentials, auth: { username: 'ckpt', password } });
    const certificateOnly = new Etcd3({ hosts: httpsUrl, credentials });
    const wrong = new Etcd3({ hosts: httpsUrl, credentials, auth: { username: 'ckpt', password: 'not-it' } });
    t.teardown(() => [coordinator, certificateOnly, wrong].forEach((c) => c.close()));
    await coordinator.put('/ckpt/jobs/x').value('1');
    t.is(await coordinator.get('/ckpt/jobs/x').string(), '1');
    const lease = coordinator.lease(5, { autoKeepAlive: false });
    await lease.put('/ckpt/leader/x').value('me');
    await lease.revoke();
    await t.throwsAsync(coordinator.put('/other').value('1'), { message: /permission denied/ });
    await t.throwsAsync(coordinator.get('/ckpt').string(), { message: /permission denied/ });
    await t.throwsAsync(certificateOnly.get('/ckpt/jobs/x').string(), { message: /permission denied|user name/ });
    await t.throwsAsync(wrong.get('/ckpt/jobs/x').string(), { message: /authentication failed/ });
  },
);
