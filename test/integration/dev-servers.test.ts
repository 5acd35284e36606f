import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  freePort,
  ServerStartError,
  startEtcd,
  startEtcdCluster,
  startLocalServers,
  startNats,
  startNatsCluster,
} from '../../src/dev/index.js';
import { etcdClient, natsConnection } from '../helpers/clients.js';
import { slugify } from '../helpers/prefix.js';
import { uniquePrefix, useServers } from '../helpers/servers.js';
import { eventually, processExists } from '../helpers/wait.js';

const servers = useServers();

test('etcd answers a put and a get through the etcd3 client', async (t) => {
  const prefix = uniquePrefix(t);
  const etcd = etcdClient(t, servers.etcdUrl);
  await etcd.put(`${prefix.etcd}k`).value('v');
  t.is(await etcd.get(`${prefix.etcd}k`).string(), 'v');
});

test('nats answers a request-reply', async (t) => {
  const subject = `${uniquePrefix(t).nats}.echo`;
  const nc = await natsConnection(t, servers.natsUrl);
  const sub = nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(`re: ${msg.string()}`) });
  t.teardown(() => sub.unsubscribe());
  await nc.flush();
  const reply = await nc.request(subject, 'ping', { timeout: 5_000 });
  t.is(reply.string(), 're: ping');
});

test('uniquePrefix gives each call its own etcd and NATS prefix', (t) => {
  const a = uniquePrefix({ title: 'Some test: with *odd* chars.' });
  const b = uniquePrefix({ title: 'Some test: with *odd* chars.' });
  t.regex(a.etcd, /^\/test-some-test-with-odd-chars-[0-9a-f]{8}\/$/);
  t.regex(a.nats, /^t_some-test-with-odd-chars_[0-9a-f]{8}$/);
  t.not(a.etcd, b.etcd);
  t.is(slugify('***'), 'test');
});

test('freePort never hands out the same port twice', async (t) => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  t.is(new Set(ports).size, ports.length);
});

test('etcd keeps its data across kill and restart on the same port', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const before = { pid: etcd.pid, url: etcd.clientUrl };
  await etcdClient(t, etcd.clientUrl).put('/survives').value('yes');
  await etcd.kill();
  t.false(etcd.running);
  t.false(processExists(before.pid));
  await etcd.restart();
  t.is(etcd.clientUrl, before.url);
  t.not(etcd.pid, before.pid);
  t.is(await etcdClient(t, etcd.clientUrl).get('/survives').string(), 'yes');
});

test('nats keeps running after restart on the same port', async (t) => {
  const nats = await startNats();
  t.teardown(() => nats.stop());
  await nats.restart();
  const nc = await natsConnection(t, nats.url);
  t.is(nc.getServer(), new URL(nats.url).host);
});

test('a paused etcd answers nothing until resumed', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const client = etcdClient(t, etcd.clientUrl);
  etcd.pause();
  await t.throwsAsync(
    client
      .get('/k')
      .options({ deadline: new Date(Date.now() + 300) })
      .string(),
  );
  etcd.resume();
  const fresh = etcdClient(t, etcd.clientUrl);
  await eventually(
    () =>
      fresh
        .put('/k')
        .value('v')
        .then(() => true),
    { what: 'etcd answering again' },
  );
  t.is(await fresh.get('/k').string(), 'v');
});

test('etcd that cannot bind its port rejects at once with its log', async (t) => {
  const blocker = await listenOnFreePort();
  t.teardown(() => closeServer(blocker.server));
  const started = Date.now();
  const error = await t.throwsAsync(startEtcd({ clientPort: blocker.port }), { instanceOf: ServerStartError });
  t.true(Date.now() - started < 10_000);
  t.regex(error.message, /exited before it was ready/);
  t.regex(error.message, /address already in use/);
  t.true(error.portInUse);
});

test('nats that cannot bind its port rejects at once with its log', async (t) => {
  const blocker = await listenOnFreePort();
  t.teardown(() => closeServer(blocker.server));
  const error = await t.throwsAsync(startNats({ port: blocker.port }), { instanceOf: ServerStartError });
  t.regex(error.message, /exited before it was ready/);
  t.regex(error.message, /address already in use/);
});

test('a server that is not healthy in time is killed and the error carries its log', async (t) => {
  const error = await t.throwsAsync(startNats({ startTimeoutMs: 1 }), { instanceOf: ServerStartError });
  t.regex(error.message, /not healthy after 1 ms/);
});

test('an aborted start rejects', async (t) => {
  const error = await t.throwsAsync(startEtcd({ signal: AbortSignal.abort() }), { instanceOf: ServerStartError });
  t.regex(error.message, /start aborted/);
});

test('stop leaves no process behind and removes the temporary data dir', async (t) => {
  const local = await startLocalServers();
  const pids = [local.etcd.pid, local.nats.pid];
  const dirs = [local.etcd.dataDir, local.nats.dataDir];
  t.true(pids.every(processExists));
  t.true(dirs.every((dir) => existsSync(dir)));
  await local.stop();
  await local.stop();
  t.false(pids.some(processExists));
  t.false(dirs.some((dir) => existsSync(dir)));
});

test('stop keeps a data dir given by the caller', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ckpt-test-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const etcd = await startEtcd({ dataDir });
  await etcd.stop();
  t.false(processExists(etcd.pid));
  t.true(existsSync(join(dataDir, 'member')));
});

test('a 3-member etcd cluster elects a leader and survives losing one member', async (t) => {
  const cluster = await startEtcdCluster(3);
  t.teardown(() => cluster.stop());
  const [first, second] = cluster.members;
  await first?.kill();
  const client = etcdClient(t, second?.clientUrl ?? '');
  await eventually(
    () =>
      client
        .put('/quorum')
        .value('ok')
        .then(() => true),
    { what: 'a write with 2 of 3 members' },
  );
  t.is(await client.get('/quorum').string(), 'ok');
});

test('a 3-server NATS cluster routes messages between its servers', async (t) => {
  const cluster = await startNatsCluster(3);
  t.teardown(() => cluster.stop());
  const [a, b] = await Promise.all([
    natsConnection(t, cluster.urls[0] ?? ''),
    natsConnection(t, cluster.urls[2] ?? ''),
  ]);
  const subject = `${uniquePrefix(t).nats}.echo`;
  a.subscribe(subject, { callback: (_err, msg) => void msg.respond('pong') });
  await a.flush();
  const reply = await eventually(() => b.request(subject, 'ping', { timeout: 500 }), { what: 'a routed reply' });
  t.is(reply.string(), 'pong');
});

for (const ending of ['process.exit()', 'SIGKILL'] as const) {
  test(`servers die with a parent that ends by ${ending}`, async (t) => {
    const parent = spawnServerParent();
    const { pids, dirs } = await readServers(parent);
    t.teardown(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));
    t.true(pids.every(processExists));
    if (ending === 'SIGKILL') parent.kill('SIGKILL');
    else parent.stdin?.end();
    await eventually(() => !pids.some(processExists), { what: 'server processes to end' });
    // Only an exit hook can remove the data; a parent killed by SIGKILL cannot.
    if (ending === 'process.exit()') t.false(dirs.some((dir) => existsSync(dir)));
  });
}

/** A Node process that starts local servers, prints their pids and dirs, and exits when its stdin closes. */
function spawnServerParent(): ReturnType<typeof spawn> {
  const script = [
    `import { startLocalServers } from ${JSON.stringify(new URL('../../src/dev/index.ts', import.meta.url).href)};`,
    'const s = await startLocalServers();',
    'const servers = { pids: [s.etcd.pid, s.nats.pid], dirs: [s.etcd.dataDir, s.nats.dataDir] };',
    'process.stdout.write(JSON.stringify(servers) + "\\n");',
    'process.stdin.on("end", () => process.exit(0)).resume();',
  ].join('\n');
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

async function readServers(child: ReturnType<typeof spawn>): Promise<{ pids: number[]; dirs: string[] }> {
  let out = '';
  for await (const chunk of child.stdout ?? []) {
    out += String(chunk);
    if (out.includes('\n')) return JSON.parse(out) as { pids: number[]; dirs: string[] };
  }
  throw new Error('parent exited before printing its servers');
}

async function listenOnFreePort(): Promise<{ server: Server; port: number }> {
  const port = await freePort();
  // Drops every connection at once: health probes must not keep it open.
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
