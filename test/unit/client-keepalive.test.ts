/**
 * How a client notices a silent coordinator: the HTTP/2 keepalive of every
 * coordinator client, and a router that does not follow a standby's
 * pointer to an address that just went silent.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_KEEPALIVE, grpcClientOptions, keepaliveChannelOptions } from '../../src/client/client-options.js';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createCoordinatorClient } from '../../src/client/index.js';
import { CONNECT_TIMEOUT_MS, LeaderRouter } from '../../src/client/leader-routing.js';
import { ERROR_METADATA } from '../../src/core/error-metadata.js';
import { CkptError } from '../../src/core/errors.js';

/** A failed call as grpc-js reports it, with the reason metadata a coordinator sends. */
function serviceError(code: grpc.status, reason?: string, leader?: string): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (reason !== undefined) metadata.set(ERROR_METADATA.reason, reason);
  if (leader !== undefined) metadata.set(ERROR_METADATA.leader, leader);
  return Object.assign(new Error(`${code} ${reason ?? ''}`), { code, details: reason ?? '', metadata });
}

test('every coordinator client pings each second and drops a connection whose ping goes 4 s unanswered', (t) => {
  t.deepEqual(DEFAULT_KEEPALIVE, { timeMs: 1000, timeoutMs: 4000 });
  const { clientOptions } = grpcClientOptions({});
  t.like(clientOptions, {
    'grpc.keepalive_time_ms': 1000,
    'grpc.keepalive_timeout_ms': 4000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  t.like(grpcClientOptions({ keepalive: { timeoutMs: 9000 } }).clientOptions, {
    'grpc.keepalive_time_ms': 1000,
    'grpc.keepalive_timeout_ms': 9000,
  });
  t.like(
    grpcClientOptions({ channelOptions: { 'grpc.keepalive_time_ms': 30_000 } }).clientOptions,
    { 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 4000 },
    'channel options take precedence',
  );
  const off = grpcClientOptions({ keepalive: false }).clientOptions;
  t.false('grpc.keepalive_time_ms' in off);
  t.deepEqual(keepaliveChannelOptions(false), {});
});

test('a keepalive time that is not a positive integer is refused with a clear error', (t) => {
  for (const keepalive of [{ timeMs: 0 }, { timeoutMs: -1 }, { timeMs: 1.5 }, { timeoutMs: Number.NaN }]) {
    t.throws(() => grpcClientOptions({ keepalive }), {
      instanceOf: CkptError,
      message: /^MALFORMED: keepalive\.time(out)?Ms: .* is not a positive number of milliseconds/,
    });
  }
});

test('a router marks an address whose connection failed silent, and does not follow a standby back to it', (t) => {
  const router = new LeaderRouter(
    ['a:1', 'b:2', 'c:3'],
    (address) => new grpc.Client(address, grpc.credentials.createInsecure()),
  );
  t.teardown(() => router.close());
  t.deepEqual(router.silentAddresses, []);
  // a:1 went silent: the client moves on, past it.
  router.follow(serviceError(grpc.status.UNAVAILABLE));
  t.is(router.address, 'b:2');
  t.deepEqual(router.silentAddresses, ['a:1']);
  // b:2 still names a:1 (its lease has not run out): c:3 is asked, then b:2 again, never a:1.
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'a:1'));
  t.is(router.address, 'c:3');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'a:1'));
  t.is(router.address, 'b:2');
  // A second call that failed on a:1's connection marks it again but does not move the client on.
  router.follow(serviceError(grpc.status.UNAVAILABLE), 'a:1');
  t.is(router.address, 'b:2');
  // Another leader named: followed.
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'c:3'));
  t.is(router.address, 'c:3');
  // c:3 goes silent too; b:2 answers, so it is not, and a:1 named by it is still avoided.
  router.follow(serviceError(grpc.status.UNAVAILABLE));
  t.is(router.address, 'b:2');
  t.deepEqual(router.silentAddresses.sort(), ['a:1', 'c:3']);
  router.follow(serviceError(grpc.status.UNAVAILABLE), 'b:2');
  t.deepEqual(router.silentAddresses.sort(), ['a:1', 'b:2', 'c:3']);
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'a:1'), 'b:2');
  t.deepEqual(router.silentAddresses.sort(), ['a:1', 'c:3'], 'an address that answers is not silent');
  t.is(router.address, 'b:2', 'every other address silent: the one that answered is asked again');
});

test('a call to an address that accepts connections but never answers goes to the next address', async (t) => {
  // A listener that accepts and then says nothing, as a paused process's kernel does.
  const sockets: Socket[] = [];
  const mute = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    mute.close();
  });
  const muteAddress = `127.0.0.1:${(mute.address() as AddressInfo).port}`;
  const client = createCoordinatorClient([muteAddress, '127.0.0.1:1'], { retry: { timeoutMs: 10_000 } });
  t.teardown(() => client.close());
  const started = Date.now();
  // Not repeated after an unknown outcome: the call ends at the refusal of the second address.
  const err = await t.throwsAsync(client.triggerCheckpoint({ jobId: 'j' }, { deadlineMs: 10_000 }));
  const tookMs = Date.now() - started;
  t.true(tookMs >= CONNECT_TIMEOUT_MS - 100 && tookMs < CONNECT_TIMEOUT_MS + 3000, `${tookMs} ms`);
  t.true(client.silentAddresses.includes(muteAddress), 'the mute address is marked silent');
  t.is((err as grpc.ServiceError).code, grpc.status.UNAVAILABLE, 'the call went on to port 1, which refuses');
});
