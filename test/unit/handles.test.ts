/**
 * What the exit report says about the handles that keep a process alive:
 * real servers, sockets and child processes of this process.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { exitReport } from '../helpers/exit-report.js';
import { activeHandles, describeHandle, leakedSockets } from '../helpers/handles.js';

async function listening(t: ExecutionContext): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.on('error', () => undefined));
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as { port: number }).port };
}

test.serial("a server, a connected socket and an unref'd server are described with their addresses", async (t) => {
  const { server, port } = await listening(t);
  const socket = connect({ host: '127.0.0.1', port });
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  t.is(describeHandle(server), `server listening on 127.0.0.1:${port}`);
  t.is(describeHandle(socket), `socket 127.0.0.1:${socket.localPort} -> 127.0.0.1:${port}`);
  t.true(activeHandles().includes(socket));
  const quiet = await listening(t);
  quiet.server.unref();
  t.is(describeHandle(quiet.server), `server listening on 127.0.0.1:${quiet.port} (unref'd)`);
});

test.serial('a child process is described with its pid and command line, and the report lists it', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  t.is(describeHandle(child), `child process pid ${child.pid}: sleep 30`);
  const report = exitReport(Date.now() - 1500);
  t.regex(
    report,
    /^\[exit-report\] pid \d+ \(test\/unit\/handles\.test\.ts\): still running 1\.\d s after its tests ended\n/,
  );
  t.regex(report, /active resources: .*ProcessWrap x1/);
  t.true(report.includes(`  child process pid ${child.pid}: sleep 30\n`));
});

test.serial('sockets destroyed the ordinary way are not lost', async (t) => {
  const { port } = await listening(t);
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.destroy();
  t.true(socket.destroyed);
  await once(socket, 'close');
  t.false(leakedSockets().includes(socket));
});
