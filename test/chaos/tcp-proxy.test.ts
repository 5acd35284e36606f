/**
 * The loopback TCP proxy of the fault suite: bytes go through unchanged,
 * `cut` breaks open connections and refuses new ones, `pause` holds bytes
 * without closing anything, `restore` forwards again. Against an echo server
 * and a real etcd.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { startEtcd, startTcpProxy, type TcpProxy } from '../../src/dev/index.js';

/** An echo server on a free loopback port, closed when the test ends. */
async function echoServer(t: ExecutionContext): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('echo server has no address');
  return `127.0.0.1:${address.port}`;
}

async function proxyTo(t: ExecutionContext, target: string): Promise<TcpProxy> {
  const proxy = await startTcpProxy({ target });
  t.teardown(() => proxy.close());
  return proxy;
}

/** A client connection with everything it received so far and how it ended. */
interface Client {
  socket: Socket;
  received(): string;
  ended: Promise<string>;
}

async function dial(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  const ended = new Promise<string>((resolve) => {
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.once('close', () => resolve('closed'));
  });
  await Promise.race([once(socket, 'connect'), ended]);
  return { socket, received: () => text, ended };
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await delay(10);
  }
  return true;
}

test('bytes go through the proxy unchanged, both ways', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  t.is(proxy.state, 'open');
  t.regex(proxy.address, /^127\.0\.0\.1:\d+$/);
  const client = await dial(proxy.port);
  const payload = 'x'.repeat(256 * 1024) + 'end';
  client.socket.write(payload);
  t.true(await until(() => client.received().length === payload.length));
  t.is(client.received(), payload);
  t.is(proxy.connections, 1);
  client.socket.destroy();
  t.true(await until(() => proxy.connections === 0));
});

test('cut resets open connections and refuses new ones until restore', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  const before = await dial(proxy.port);
  before.socket.write('ping');
  t.true(await until(() => before.received() === 'ping'));

  proxy.cut();
  t.is(proxy.state, 'cut');
  t.is(await before.ended, 'ECONNRESET');
  const during = await dial(proxy.port);
  t.is(await during.ended, 'ECONNRESET', 'a new connection is reset at once');
  t.is(proxy.connections, 0);

  proxy.restore();
  t.is(proxy.state, 'open');
  const after = await dial(proxy.port);
  after.socket.write('pong');
  t.true(await until(() => after.received() === 'pong'));
  after.socket.destroy();
});

test('pause holds bytes without closing; restore delivers them', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  const client = await dial(proxy.port);
  client.socket.write('a');
  t.true(await until(() => client.received() === 'a'));

  proxy.pause();
  client.socket.write('b');
  const held = await dial(proxy.port);
  held.socket.write('c');
  await delay(300);
  t.is(client.received(), 'a', 'nothing moves while paused');
  t.is(held.received(), '');
  t.false(client.socket.destroyed);

  proxy.restore();
  t.true(await until(() => client.received() === 'ab'));
  t.true(await until(() => held.received() === 'c'), 'a connection accepted while paused goes through');
  client.socket.destroy();
  held.socket.destroy();
});

test('a target that is down resets the client; close stops listening', async (t) => {
  const proxy = await proxyTo(t, '127.0.0.1:1');
  const client = await dial(proxy.port);
  t.true(['ECONNRESET', 'closed'].includes(await client.ended));
  await proxy.close();
  t.is(proxy.state, 'closed');
  const refused = await dial(proxy.port);
  t.is(await refused.ended, 'ECONNREFUSED');
  await proxy.close();
});

test('an etcd client through the proxy fails while the link is cut and works after restore', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const proxy = await proxyTo(t, new URL(etcd.clientUrl).host);
  const client = new Etcd3({
    hosts: `http://${proxy.address}`,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + 1000) }),
  });
  t.teardown(() => client.close());
  await client.put('/proxy-test/k').value('1');
  t.is(await client.get('/proxy-test/k').string(), '1');

  proxy.cut();
  await t.throwsAsync(client.put('/proxy-test/k').value('2'));
  proxy.restore();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await client
      .put('/proxy-test/k')
      .value('3')
      .then(() => true)
      .catch(() => false);
    if (ok || Date.now() > deadline) break;
    await delay(100);
  }
  t.is(await client.get('/proxy-test/k').string(), '3');
  t.true(proxy.accepted >= 2, 'the client connected again through the proxy');
});
