/**
 * The word count example's manifests, run as processes on this machine
 * with what make-certs.sh makes: an etcd and a nats-server with the
 * members' certificates, etcd's authentication set up by the Job's script,
 * the NATS users of nats.conf; then the coordinator, the three workers and
 * the submit Job as the CLI and worker.ts with the rendered command lines
 * and environments, every mounted path mapped onto the script's output,
 * addresses onto loopback. The job is submitted as the operators'
 * certificate, its workers attach as theirs (the access policy), over
 * mutual TLS checked for the Service's name, and its checkpoints
 * complete. What only a cluster has (DNS, Services, probes,
 * NetworkPolicies, the image) is not exercised.
 * Without kubectl the test is skipped, and says so in its title.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import test from 'ava';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort, startEtcd, startNats, type EtcdProcess, type NatsProcess } from '../../src/dev/index.js';
import { sentences } from '../../examples/wordcount/corpus.js';
import { INPUT_STREAM, inputSubject } from '../../examples/wordcount/job.js';
import {
  KUBERNETES_DIR,
  REPO_ROOT,
  hasKubectl,
  localNatsConfig,
  makeScratch,
  podsOf,
  removeScratch,
  renderKustomization,
  type FullContainer,
  type KubeObject,
  type PodSpec,
} from '../helpers/kubernetes-manifests.js';
import { runTool } from '../helpers/run-tool.js';
import { eventually } from '../helpers/wait.js';

const kubectl = await hasKubectl();
const run = kubectl ? test : test.skip;
const skipped = kubectl ? '' : ' (skipped: kubectl is not installed)';

const FEEDER = { user: 'feeder', password: 'feeder-test-password' };

/** Where each mounted volume of the pod of `owner` lies here: make-certs.sh's output for Secrets, a copy for ConfigMaps. */
async function localMounts(
  objects: readonly KubeObject[],
  owner: string,
  pod: PodSpec,
  container: FullContainer,
  out: string,
  scratch: string,
): Promise<Map<string, string>> {
  const local = new Map<string, string>();
  for (const m of container.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === m.name);
    let dir = join(scratch, 'volumes', owner.replace('/', '-'), m.name);
    if (volume?.secret) {
      const name = volume.secret.secretName;
      const base = name.endsWith('-tls') ? join(out, name) : join(out, 'secrets', name);
      // Items rename keys: copy each to its path.
      if (volume.secret.items !== undefined) {
        await mkdir(dir, { recursive: true });
        for (const item of volume.secret.items)
          await writeFile(join(dir, item.path), await readFile(join(base, item.key)));
      } else dir = base;
    } else if (volume?.configMap) {
      const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap?.name);
      await mkdir(dir, { recursive: true });
      for (const [key, value] of Object.entries((configMap?.['data'] as Record<string, string>) ?? {}))
        await writeFile(join(dir, key), value);
    } else await mkdir(dir, { recursive: true });
    local.set(m.mountPath, dir);
  }
  return local;
}

/** `value` with a mounted path replaced by its local one. */
function mapped(local: ReadonlyMap<string, string>, value: string): string {
  for (const [mount, dir] of local) {
    if (value === mount) return dir;
    if (value.startsWith(`${mount}/`)) return dir + value.slice(mount.length);
  }
  return value;
}

/** A container's command line and environment, mapped: paths, `$(VAR)`s, and the addresses `address` rewrites. */
function commandLine(
  container: FullContainer,
  local: ReadonlyMap<string, string>,
  address: (arg: string) => string,
): { args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = mapped(local, e.value);
  const expand = (s: string): string => s.replace(/\$\((\w+)\)/g, (_, name: string) => env[name] ?? '');
  const map = (arg: string): string => {
    const eq = arg.indexOf('=');
    if (!arg.startsWith('--') || eq < 0) return mapped(local, address(expand(arg)));
    return `${arg.slice(0, eq)}=${mapped(local, address(expand(arg.slice(eq + 1))))}`;
  };
  return { args: [...(container.command ?? []), ...(container.args ?? [])].map(map), env };
}

run(`the word count's manifests, run here with make-certs.sh's Secrets: the job checkpoints${skipped}`, async (t) => {
  t.timeout(300_000);
  const scratch = await makeScratch();
  t.teardown(() => removeScratch(scratch));
  const out = join(scratch, 'secrets');
  const made = await runTool('bash', [join(KUBERNETES_DIR, 'certs/make-certs.sh'), out]);
  t.true(made.ok, made.out);
  // The HTTP port serves HTTPS with the coordinators' certificate, checked against the gRPC CA.
  const grpcCa = await readFile(join(out, 'coordinator-tls', 'ca.crt'));
  const httpsGet = (url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      request(url, { headers, ca: grpcCa, servername: 'ckpt-coordinator.ckpt.svc' }, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  const objects = await renderKustomization('examples/wordcount', scratch);
  const pods = podsOf(objects);
  const pod = (owner: string): { pod: PodSpec; container: FullContainer } => {
    const found = pods.find((p) => p.owner === owner);
    const container = found?.pod.containers[0];
    if (found === undefined || container === undefined) throw new Error(`no ${owner}`);
    return { pod: found.pod, container };
  };

  // etcd with the members' certificate; authentication by the Job's script.
  const [etcdHttp, etcdHttps] = [await freePort(), await freePort()];
  const etcdUrl = `https://127.0.0.1:${etcdHttps}`;
  const etcdTls = join(out, 'etcd-server-tls');
  const etcd: EtcdProcess = await startEtcd({
    clientPort: etcdHttp,
    extraArgs: [
      ...['--listen-client-urls', `http://127.0.0.1:${etcdHttp},${etcdUrl}`, '--advertise-client-urls', etcdUrl],
      ...['--cert-file', join(etcdTls, 'tls.crt'), '--key-file', join(etcdTls, 'tls.key')],
      ...['--trusted-ca-file', join(etcdTls, 'ca.crt'), '--client-cert-auth'],
    ],
  });
  t.teardown(() => etcd.stop());
  const setup = pod('Job/etcd-auth-setup');
  const setupMounts = await localMounts(objects, 'Job/etcd-auth-setup', setup.pod, setup.container, out, scratch);
  const setupRun = commandLine(setup.container, setupMounts, (a) => a);
  setupRun.env['ETCDCTL_ENDPOINTS'] = etcdUrl;
  const authed = await runTool(setupRun.args[0] ?? 'sh', setupRun.args.slice(1), {
    env: { PATH: process.env['PATH'], ...setupRun.env },
  });
  t.true(authed.ok, authed.out);

  // NATS with nats.conf, the servers' certificate and the passwords of Secret nats-users.
  const natsConfMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('nats-config'));
  const natsConf = (natsConfMap?.['data'] as Record<string, string>)['nats.conf'] ?? '';
  const natsTls = join(out, 'nats-server-tls');
  const password = (key: string): Promise<string> => readFile(join(out, 'secrets/nats-users', key), 'utf8');
  const passwords = {
    COORDINATOR_PASSWORD: await password('coordinator-password'),
    WORKER_WORDCOUNT_PASSWORD: await password('worker-wordcount-password'),
    SYSTEM_PASSWORD: await password('system-password'),
  };
  const tls = { cert: join(natsTls, 'tls.crt'), key: join(natsTls, 'tls.key'), ca: join(natsTls, 'ca.crt') };
  await writeFile(join(scratch, 'nats.conf'), localNatsConfig(natsConf, tls, passwords, FEEDER));
  const nats: NatsProcess = await startNats({ extraArgs: ['-c', join(scratch, 'nats.conf')] });
  t.teardown(() => nats.stop());

  const grpcPort = await freePort();
  const httpPort = await freePort();
  const address = (arg: string): string =>
    arg
      .replace(/https:\/\/etcd-\d\.etcd:2379(,https:\/\/etcd-\d\.etcd:2379)*/, etcdUrl)
      .replace('nats://nats:4222', nats.url)
      .replace(/^(0\.0\.0\.0|ckpt-coordinator):7070$/, `127.0.0.1:${grpcPort}`)
      .replace('0.0.0.0:7071', `127.0.0.1:${httpPort}`)
      .replace('0.0.0.0:9464', '127.0.0.1:0');
  const children: ChildProcess[] = [];
  t.teardown(() => children.forEach((c) => c.kill('SIGKILL')));
  const logs: string[] = [];
  const start = (name: string, line: { args: string[]; env: Record<string, string> }): void => {
    const [node, file, ...rest] = line.args;
    // The image runs dist/ (the worker from its startup snapshot or its bundle, start-worker.sh); here the
    // sources, through tsx.
    t.true(node === 'node' || (node === 'sh' && (file ?? '').endsWith('/start-worker.sh')), `${name}: ${node} ${file}`);
    const source = (file ?? '')
      .replace(/^dist\//, '')
      .replace(/start-worker\.sh$/, 'worker.js')
      .replace(/\.js$/, '.ts');
    const child = spawn('node', ['--import', 'tsx', source, ...rest], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'], ...line.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer): void => void logs.push(`${name}: ${chunk.toString()}`);
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    children.push(child);
  };

  const coordinator = pod('Deployment/ckpt-coordinator');
  const coordinatorMounts = await localMounts(
    objects,
    'Deployment/ckpt-coordinator',
    coordinator.pod,
    coordinator.container,
    out,
    scratch,
  );
  // The access policy names its token file by the path in the pod.
  const policyDir = coordinatorMounts.get('/etc/ckpt/access-policy') ?? '';
  const policyFile = join(policyDir, 'access-policy.json');
  const policy = await readFile(policyFile, 'utf8');
  await writeFile(policyFile, policy.replaceAll('/etc/ckpt/tokens', mapped(coordinatorMounts, '/etc/ckpt/tokens')));
  const coordinatorRun = commandLine(coordinator.container, coordinatorMounts, address);
  coordinatorRun.env['POD_IP'] = '127.0.0.1';
  coordinatorRun.args = coordinatorRun.args.map((a) =>
    a.replace(/^--advertise=.*$/, `--advertise=127.0.0.1:${grpcPort}`),
  );
  delete coordinatorRun.env['NODE_OPTIONS'];
  start('coordinator', coordinatorRun);
  try {
    await eventually(async () => (await httpsGet(`https://127.0.0.1:${httpPort}/readyz`)).body.includes('ready:'), {
      timeoutMs: 90_000,
      what: 'the coordinator to lead',
    });
  } catch (err) {
    t.log(logs.join(''));
    throw err;
  }

  // The job first: a worker of a job not yet submitted exits (Kubernetes would start it again).
  const submit = pod('Job/wordcount-submit');
  const submitMounts = await localMounts(objects, 'Job/wordcount-submit', submit.pod, submit.container, out, scratch);
  const submitted = commandLine(submit.container, submitMounts, address);
  const cli = await runTool('node', ['--import', 'tsx', 'src/cli/main.ts', ...submitted.args.slice(2)], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'], ...submitted.env },
  });
  t.true(cli.ok, cli.out);

  for (const owner of ['split-count-0', 'split-count-1', 'sink'].map((s) => `Deployment/wordcount-worker-${s}`)) {
    const worker = pod(owner);
    const mounts = await localMounts(objects, owner, worker.pod, worker.container, out, scratch);
    start(owner, commandLine(worker.container, mounts, address));
  }

  const feeder = await connect({
    servers: nats.url,
    ...{ user: FEEDER.user, pass: FEEDER.password },
    tls: { caFile: tls.ca },
  });
  t.teardown(() => feeder.close());
  await (await jetstreamManager(feeder)).streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'] });
  const js = jetstream(feeder);
  for (const [i, sentence] of sentences(50).entries()) await js.publish(inputSubject(i % 2), sentence);

  // Checkpoints complete: asked as the operators, by their certificate, with the CLI.
  const tlsFlags = submitted.args.filter((a) => a.startsWith('--tls') || a.startsWith('--address'));
  let lastListing = '';
  try {
    await eventually(
      async () => {
        const listed = await runTool(
          'node',
          ['--import', 'tsx', 'src/cli/main.ts', ...tlsFlags, '--json', 'checkpoints', 'wordcount'],
          { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] } },
        );
        lastListing = listed.out;
        return listed.ok && /COMPLETED/.test(listed.stdout) ? listed.stdout : undefined;
      },
      { timeoutMs: 60_000, pollMs: 1000, what: 'a completed checkpoint of wordcount' },
    );
  } catch (err) {
    t.log(`the last listing: ${lastListing}`);
    t.log(logs.join('').slice(-20_000));
    throw err;
  }
  t.false(/permissions violation/i.test(logs.join('')), 'no NATS refusal in any log');

  // A second coordinator, a standby: the dashboard's API it serves comes from the leader, asked over
  // mutual TLS with the peer certificate (principal coordinators), the leader's checked for the Service's name.
  // The caller is known by the operators' token.
  const [grpc2, http2] = [await freePort(), await freePort()];
  const standby = commandLine(coordinator.container, coordinatorMounts, (arg) =>
    address(arg)
      .replace(`127.0.0.1:${grpcPort}`, `127.0.0.1:${grpc2}`)
      .replace(`127.0.0.1:${httpPort}`, `127.0.0.1:${http2}`),
  );
  standby.args = standby.args.map((a) => a.replace(/^--advertise=.*$/, `--advertise=127.0.0.1:${grpc2}`));
  delete standby.env['NODE_OPTIONS'];
  start('standby', standby);
  let last = '';
  // The API identifies its callers like gRPC: here the operators' token (Secret ckpt-tokens).
  const token = await readFile(join(out, 'secrets/ckpt-tokens/operator'), 'utf8');
  try {
    const jobs = await eventually(
      async () => {
        const res = await httpsGet(`https://127.0.0.1:${http2}/api/v1/jobs`, { authorization: `Bearer ${token}` });
        last = `${res.status} ${res.body}`;
        return res.status === 200 ? res.body : undefined;
      },
      { timeoutMs: 90_000, pollMs: 500, what: "the standby's forwarded answer" },
    );
    t.true(jobs.includes('wordcount'), jobs);
  } catch (err) {
    t.log(`the standby's last answer: ${last}`);
    t.log(
      logs
        .filter((l) => l.startsWith('standby') || l.startsWith('coordinator'))
        .join('')
        .slice(-20_000),
    );
    throw err;
  }
});
