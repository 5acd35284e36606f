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
import { leakedSockets } from '../helpers/handles.js';
import { eventually } from '../helpers/wait.js';

/** Starts `server` on a free loopback port and returns the port; the server and its connections close when the test ends. */
async function listen(t: ExecutionContext, server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  return address.port;
}

/** An echo server on a free loopback port, closed when the test ends. */
async function echoServer(t: ExecutionContext): Promise<string> {
  const port = await listen(
    t,
    createServer((socket) => socket.pipe(socket)),
  );
  return `127.0.0.1:${port}`;
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

test('bytes go through the proxy unchanged, both ways', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  t.is(proxy.state, 'open');
  t.regex(proxy.address, /^127\.0\.0\.1:\d+$/);
  const client = await dial(proxy.port);
  const payload = 'x'.repeat(256 * 1024) + 'end';
  client.socket.write(payload);
  await eventually(() => client.received().length === payload.length, { what: 'the echo' });
  t.is(client.received(), payload);
  t.is(proxy.connections, 1);
  client.socket.destroy();
  await eventually(() => proxy.connections === 0, { what: 'the link closed' });
  t.is(proxy.connections, 0);
});

test('cut resets open connections and refuses new ones until restore', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  const before = await dial(proxy.port);
  before.socket.write('ping');
  await eventually(() => before.received() === 'ping', { what: 'the echo before the cut' });

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
  await eventually(() => after.received() === 'pong', { what: 'the echo after restore' });
  after.socket.destroy();
});

test('pause holds bytes without closing; restore delivers them', async (t) => {
  const proxy = await proxyTo(t, await echoServer(t));
  const client = await dial(proxy.port);
  client.socket.write('a');
  await eventually(() => client.received() === 'a', { what: 'the echo before the pause' });

  proxy.pause();
  client.socket.write('b');
  const held = await dial(proxy.port);
  held.socket.write('c');
  // The point of the test: for a while, nothing arrives. A slow machine only
  // shortens what is checked, it cannot make the check fail.
  await delay(300);
  t.is(client.received(), 'a', 'nothing moves while paused');
  t.is(held.received(), '');
  t.false(client.socket.destroyed);

  proxy.restore();
  await eventually(() => client.received() === 'ab', { what: 'the held byte delivered' });
  await eventually(() => held.received() === 'c', { what: 'a connection accepted while paused going through' });
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
  // The client may still back off from the failed calls: retry until a put goes through.
  const put = async (): Promise<boolean> => {
    await client.put('/proxy-test/k').value('3');
    return true;
  };
  await eventually(put, {
    pollMs: 100,
    what: 'a put through the restored link',
  });
  t.is(await client.get('/proxy-test/k').string(), '3');
  t.true(proxy.accepted >= 2, 'the client connected again through the proxy');
});

test('a cut while the proxy ends a link closes it and loses no socket', async (t) => {
  const accepted: Socket[] = [];
  const targetPort = await listen(
    t,
    createServer((socket) => accepted.push(socket)),
  );
  const proxy = await proxyTo(t, `127.0.0.1:${targetPort}`);
  // A second connection, whose first byte makes the proxy cut.
  const triggerPort = await listen(
    t,
    createServer((socket) => socket.once('data', () => proxy.cut())),
  );
  const trigger = connect({ host: '127.0.0.1', port: triggerPort });
  t.teardown(() => trigger.destroy());
  await once(trigger, 'connect');

  const client = await dial(proxy.port);
  await eventually(() => accepted.length === 1, { what: 'the link reaching the target' });
  // The target's FIN, then the trigger's byte: both arrive in one turn of the
  // event loop, the FIN first. The FIN makes the proxy end the client's side
  // (a TCP shutdown that libuv completes later in that turn); the byte makes
  // it cut the link before that.
  const upstream = accepted[0] as Socket;
  upstream.end();
  await once(upstream, 'finish');
  trigger.write('x');

  t.true(['closed', 'ECONNRESET'].includes(await client.ended));
  t.is(proxy.state, 'cut');
  await eventually(() => proxy.connections === 0, { what: 'the proxy dropping the link' });
  // Node closes a destroyed socket's handle within a turn of the event loop; a lost one stays forever.
  await eventually(() => leakedSockets().length === 0, {
    timeoutMs: 2000,
    what: 'no socket destroyed with its handle left open',
  });
});
