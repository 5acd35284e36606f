/**
 * The pure parts of coordinator high availability: address lists, which
 * failed calls a client retries and where it goes next, leader terms, the
 * new configuration options, the NOT_LEADER status, and the host's
 * transitions between standby and leader.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { LeaderTerms } from '../../src/bus/index.js';
import { LeaderRouter, parseAddresses, retriable } from '../../src/client/leader-routing.js';
import { resolveConfig } from '../../src/config/index.js';
import { CkptError } from '../../src/core/errors.js';
import type { Coordinator } from '../../src/coordinator/coordinator.js';
import { silentLogger } from '../../src/log/index.js';
import { CoordinatorHost } from '../../src/server/coordinator-host.js';
import { ERROR_METADATA } from '../../src/core/error-metadata.js';
import { toStatus } from '../../src/server/status.js';

/** A failed call as grpc-js reports it, with the reason metadata a coordinator sends. */
function serviceError(code: grpc.status, reason?: string, leader?: string, retryable = false): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (reason !== undefined) metadata.set(ERROR_METADATA.reason, reason);
  if (leader !== undefined) metadata.set(ERROR_METADATA.leader, leader);
  if (retryable) metadata.set(ERROR_METADATA.retryable, 'true');
  return Object.assign(new Error(`${code} ${reason ?? ''}`), { code, details: reason ?? '', metadata });
}

test('addresses come as one, a comma-separated list or an array, without blanks or repeats', (t) => {
  t.deepEqual(parseAddresses('a:1'), ['a:1']);
  t.deepEqual(parseAddresses(' a:1, b:2 ,'), ['a:1', 'b:2']);
  t.deepEqual(parseAddresses(['a:1', 'b:2,a:1']), ['a:1', 'b:2']);
  t.throws(() => parseAddresses(' , '), { instanceOf: CkptError, message: /^MALFORMED: coordinator: at least one/ });
  t.throws(() => parseAddresses(undefined, 'addresses'), { message: /addresses: at least one/ });
  t.deepEqual(parseAddresses([7, 'a:1'] as unknown as string[]), ['a:1'], 'what is not a string is skipped');
});

test('refusals that did nothing are retried for every call; unknown outcomes only for idempotent ones', (t) => {
  const notLeader = serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'b:2');
  const stopping = serviceError(grpc.status.UNAVAILABLE, 'SHUTTING_DOWN');
  const takingOver = serviceError(grpc.status.UNAVAILABLE, 'TAKING_OVER', undefined, true);
  const transport = serviceError(grpc.status.UNAVAILABLE);
  const etcdDown = serviceError(grpc.status.UNAVAILABLE, 'UNAVAILABLE');
  for (const err of [notLeader, stopping, takingOver]) {
    t.true(retriable(err, 'once'));
    t.true(retriable(err, 'idempotent'));
  }
  for (const err of [transport, etcdDown]) {
    t.false(retriable(err, 'once'));
    t.true(retriable(err, 'idempotent'));
  }
  t.false(retriable(serviceError(grpc.status.FAILED_PRECONDITION, 'STALE_EPOCH'), 'idempotent'));
  const limit = serviceError(grpc.status.RESOURCE_EXHAUSTED, 'LIMIT_REACHED', undefined, true);
  t.true(retriable(limit, 'idempotent'), 'the coordinator said the same request may succeed later');
  t.false(retriable(limit, 'once'));
  t.false(retriable(serviceError(grpc.status.RESOURCE_EXHAUSTED, 'LIMIT_REACHED'), 'idempotent'));
  t.false(retriable(serviceError(grpc.status.DEADLINE_EXCEEDED), 'idempotent'));
  t.false(retriable(new Error('not a call'), 'idempotent'));
});

test('a router moves to the named leader, else to the next address, and stays for other failures', (t) => {
  const created: string[] = [];
  const router = new LeaderRouter(
    ['a:1', 'b:2'],
    (address) => {
      created.push(address);
      return new grpc.Client(address, grpc.credentials.createInsecure());
    },
    {},
    true,
  );
  t.teardown(() => router.close());
  t.is(router.address, 'a:1');
  router.follow(serviceError(grpc.status.UNAVAILABLE));
  t.is(router.address, 'b:2');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER'));
  t.is(router.address, 'a:1');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'c:3'));
  t.is(router.address, 'c:3');
  t.deepEqual(router.addresses, ['a:1', 'b:2', 'c:3']);
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'UNAVAILABLE'));
  router.follow(serviceError(grpc.status.NOT_FOUND, 'UNKNOWN_JOB'));
  t.is(router.address, 'c:3');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'TAKING_OVER', undefined, true));
  t.is(router.address, 'c:3', 'a coordinator taking over leads already: the call goes to it again');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'SHUTTING_DOWN'));
  t.is(router.address, 'a:1', 'a coordinator shutting down is left for the next address');
  router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'c:3'));
  t.is(router.address, 'c:3');
  t.truthy(router.client);
  t.is(router.client, router.client, 'one client per address');
  t.deepEqual(created, ['c:3']);
});

test('a router refuses to follow a leader it was not given, unless allowed', (t) => {
  const router = new LeaderRouter(
    ['a:1', 'b:2'],
    (address) => new grpc.Client(address, grpc.credentials.createInsecure()),
  );
  t.teardown(() => router.close());
  const refused = router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'c:3'));
  t.like(refused, { reason: 'NOT_LEADER', leader: 'c:3' });
  t.regex(refused?.message ?? '', /a:1 names c:3 as the leader, which is not among the coordinator addresses given/);
  t.is(router.address, 'a:1', 'it stays');
  t.deepEqual(router.addresses, ['a:1', 'b:2']);
  t.is(router.follow(serviceError(grpc.status.UNAVAILABLE, 'NOT_LEADER', 'b:2')), undefined);
  t.is(router.address, 'b:2', 'a given address is followed');
});

test('the TLS options come in pairs, and mutual TLS needs a server certificate', (t) => {
  t.is(resolveConfig({}, {}).tlsCert, undefined);
  const fromEnv = resolveConfig({}, { CKPT_TLS_CERT: 's.pem', CKPT_TLS_KEY: 's.key', CKPT_TLS_CLIENT_CA: 'ca.pem' });
  t.like(fromEnv, { tlsCert: 's.pem', tlsKey: 's.key', tlsClientCa: 'ca.pem', tlsReloadIntervalMs: 60_000 });
  t.throws(() => resolveConfig({ tlsCert: 's.pem' }, {}), {
    message: /tlsKey \(CKPT_TLS_KEY\) must be given together/,
  });
  t.throws(() => resolveConfig({ tlsClientCa: 'ca.pem' }, {}), { message: /tlsClientCa \(CKPT_TLS_CLIENT_CA\) needs/ });
  t.throws(() => resolveConfig({ peerTlsKey: 'p.key' }, {}), { message: /peerTlsCert/ });
});

test('leader terms admit equal or higher terms and refuse lower ones', (t) => {
  const terms = new LeaderTerms();
  t.is(terms.highest, 0);
  t.true(terms.admit(7));
  t.true(terms.admit(7));
  t.false(terms.admit(6));
  t.true(terms.admit(9));
  t.false(terms.admit(0));
  t.is(terms.highest, 9);
});

test('leaseTtlMs and advertise have defaults, read the environment and are validated', (t) => {
  const defaults = resolveConfig({}, {});
  t.is(defaults.leaseTtlMs, 5000);
  t.is(defaults.advertise, undefined);
  const fromEnv = resolveConfig({}, { CKPT_LEASE_TTL_MS: '2500', CKPT_ADVERTISE: 'ckpt-0.ckpt:7070' });
  t.is(fromEnv.leaseTtlMs, 2500);
  t.is(fromEnv.advertise, 'ckpt-0.ckpt:7070');
  t.throws(() => resolveConfig({ leaseTtlMs: 999 }, {}), { message: /leaseTtlMs \(CKPT_LEASE_TTL_MS\)/ });
  t.throws(() => resolveConfig({ advertise: 'host' }, {}), { message: /advertise \(CKPT_ADVERTISE\)/ });
  t.throws(() => resolveConfig({ advertise: 'host:0' }, {}), { message: /advertise/ });
});

test('NOT_LEADER is UNAVAILABLE and names the leader in the trailing metadata', (t) => {
  const status = toStatus(new CkptError('NOT_LEADER', 'a standby', { leader: 'b:2', retryable: true }));
  t.is(status.code, grpc.status.UNAVAILABLE);
  t.deepEqual(status.metadata?.get(ERROR_METADATA.reason), ['NOT_LEADER']);
  t.deepEqual(status.metadata?.get(ERROR_METADATA.leader), ['b:2']);
  t.deepEqual(toStatus(new CkptError('NOT_LEADER', 'no leader yet')).metadata?.get(ERROR_METADATA.leader), []);
});

test('the host refuses as a standby, starts a coordinator when elected and stops it when deposed', async (t) => {
  const stops: Array<CkptError | undefined> = [];
  let started!: () => void;
  const fake = {
    start: () => new Promise<void>((resolve) => (started = resolve)),
    stop: (reason?: CkptError) => {
      stops.push(reason);
      return Promise.resolve();
    },
  } as unknown as Coordinator;
  const serving: boolean[] = [];
  const host = new CoordinatorHost({
    create: () => fake,
    leader: () => 'b:2',
    onServing: (s) => serving.push(s),
    onFailed: () => t.fail('no failure expected'),
    logger: silentLogger(),
  });
  t.like(
    t.throws(() => host.current()),
    { reason: 'NOT_LEADER', leader: 'b:2' },
  );
  host.lead({ key: '/ckpt/election/leader/1', createRevision: '5', term: 5 });
  const takingOver = t.throws(() => host.current());
  t.like(takingOver, { reason: 'TAKING_OVER', retryable: true }, 'elected, still loading its jobs');
  const status = toStatus(takingOver);
  t.is(status.code, grpc.status.UNAVAILABLE);
  t.deepEqual(status.metadata?.get(ERROR_METADATA.reason), ['TAKING_OVER']);
  t.deepEqual(status.metadata?.get(ERROR_METADATA.retryable), ['true']);
  await new Promise((resolve) => setImmediate(resolve));
  started();
  await host.settled();
  t.is(host.state, 'leading');
  t.is(host.current(), fake);
  host.follow('lease lost');
  t.like(
    t.throws(() => host.current()),
    { reason: 'NOT_LEADER' },
  );
  await host.settled();
  t.is(stops.length, 1);
  t.like(stops[0], { reason: 'NOT_LEADER', leader: 'b:2' }, 'the sessions end naming the leader as known');
  await host.stop();
  t.deepEqual(serving, [true, false, false]);
  t.like(
    t.throws(() => host.current()),
    { reason: 'SHUTTING_DOWN', retryable: true },
  );
});
