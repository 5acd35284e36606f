/**
 * Replacing a dead leader before its lease expires, on real etcd: a standby
 * whose connections to the leader's address are refused revokes the
 * leader's lease (and not while the address accepts connections, nor on
 * timeouts); a process started on the address of a dead one revokes that
 * one's candidacy; and a killed coordinator's standby leads within a
 * fraction of a long TTL.
 */
import { createServer, type Server } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { resolveConfig } from '../../src/config/index.js';
import { freePort } from '../../src/dev/index.js';
import { silentLogger } from '../../src/log/index.js';
import { electionWatchBackoff, candidacyKeyPrefix } from '../../src/server/election.js';
import type { LeaderRecord } from '../../src/server/leader-observer.js';
import { LeaderProbe, probeTcp, type ProbeOutcome } from '../../src/server/leader-probe.js';
import { Leadership } from '../../src/server/leadership.js';
import { runCoordinator, type RunningCoordinator } from '../../src/server/run.js';
import { etcdClient, eventually, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers();

/** A TTL far longer than any take-over these tests allow: only the probe or a revoke can hand over in time. */
const LONG_TTL_MS = 20_000;
/** What a take-over without waiting for the TTL may take on a loaded machine. */
const TAKEOVER_MS = 6000;

/** A candidate in the election under `prefix`, with its own etcd client; stopped when the test ends. */
function candidate(t: ExecutionContext, prefix: string, advertise: string, probeIntervalMs: number): Leadership {
  const client = new Etcd3({
    hosts: servers.etcdUrl,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + 2000 }),
    faultHandling: { watchBackoff: electionWatchBackoff() },
  });
  const leadership = new Leadership({
    client,
    prefix,
    leaseTtlMs: LONG_TTL_MS,
    probeIntervalMs,
    logger: silentLogger(),
    onElected: () => undefined,
    onDeposed: () => undefined,
  });
  t.teardown(async () => {
    await leadership.stop(true);
    client.close();
  });
  leadership.start(advertise);
  return leadership;
}

async function listening(t: ExecutionContext): Promise<{ server: Server; address: string }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  return { server, address: `127.0.0.1:${port}` };
}

test('a standby revokes the lease of a leader whose address refuses connections, not while it accepts them', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const { server, address } = await listening(t);
  const leader = candidate(t, prefix, address, 0);
  await eventually(() => leader.state === 'leading', { what: 'the first candidate leading' });
  const standby = candidate(t, prefix, `127.0.0.1:${await freePort()}`, 50);
  await eventually(() => standby.leader === address, { what: 'the standby naming the leader' });
  // Twenty probes, all accepted: nothing happens.
  await delay(1000);
  t.is(leader.state, 'leading');
  t.is(standby.state, 'campaigning');

  const closedAt = Date.now();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await eventually(() => standby.state === 'leading', { timeoutMs: TAKEOVER_MS, what: 'the standby leading' });
  t.true(Date.now() - closedAt < TAKEOVER_MS, 'well before the TTL');
  // The revoked leader finds its key gone and queues up again behind the new one.
  await eventually(() => leader.state === 'campaigning', { timeoutMs: TAKEOVER_MS, what: 'the old leader deposed' });
});

test('a TCP probe tells a listening address from a refusing one; anything else proves nothing', async (t) => {
  const { server, address } = await listening(t);
  t.is(await probeTcp(address, 1000), 'accepted');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.is(await probeTcp(address, 1000), 'refused');
  t.is(await probeTcp(`localhost:${address.split(':')[1] ?? ''}`, 1000), 'refused', 'every address of a name refuses');
  t.is(await probeTcp('no-such-host.invalid:7070', 1000), 'unknown');
});

test('a probe revokes only after refusals in a row of one candidacy; timeouts prove nothing', async (t) => {
  const etcd = etcdClient(t, servers.etcdUrl);
  const keyPrefix = candidacyKeyPrefix(uniquePrefix(t).etcd);
  const lease = etcd.lease(60, { autoKeepAlive: false });
  t.teardown(() => lease.revoke().catch(() => undefined));
  const leaseId = await lease.grant();
  const key = `${keyPrefix}${BigInt(leaseId).toString(16)}`;
  await lease.put(key).value('127.0.0.1:1').exec();
  const kv = (await etcd.get(key).exec()).kvs[0];
  if (kv === undefined) throw new Error('the key was not put');
  const record: LeaderRecord = { key, address: '127.0.0.1:1', createRevision: kv.create_revision, lease: kv.lease };

  // Never three refusals without an accepted connection between them; then three in a row.
  const script: ProbeOutcome[] = ['refused', 'refused', 'accepted', 'refused', 'unknown', 'refused', 'accepted'];
  script.push('refused', 'unknown', 'refused', 'refused');
  const tried: ProbeOutcome[] = [];
  let revokeSeen = -1;
  const probe = new LeaderProbe({
    client: etcd,
    leader: () => record,
    intervalMs: 20,
    minRevokeGapMs: 60_000,
    logger: silentLogger(),
    connect: async () => {
      const alive = (await etcd.get(key).exec()).kvs.length > 0;
      if (!alive && revokeSeen < 0) revokeSeen = tried.length;
      const next = script[tried.length] ?? 'accepted';
      tried.push(next);
      return next;
    },
  });
  t.teardown(() => probe.stop());
  probe.start();
  await eventually(() => tried.length > script.length + 1, { what: 'the whole script probed' });
  probe.stop();
  t.is(await etcd.get(key).string(), null, 'the lease was revoked');
  // The key was still there at every probe up to the last refusal, gone at the next one.
  t.is(revokeSeen, script.length);
});

test('a coordinator started on the address of a dead one revokes that one’s candidacy at once', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const address = `127.0.0.1:${await freePort()}`;
  const first = candidate(t, prefix, address, 0);
  await eventually(() => first.state === 'leading', { what: 'the first candidate leading' });
  const otherAddress = `127.0.0.1:${await freePort()}`;
  const other = candidate(t, prefix, otherAddress, 0);
  await eventually(() => other.leader === address, { what: 'the other naming the first' });
  // As if the process died: the lease is left to expire.
  await first.stop(false);
  await delay(500);
  t.is(other.state, 'campaigning', 'the other waits for the lease');

  const restartedAt = Date.now();
  const again = candidate(t, prefix, address, 0);
  await eventually(() => other.state === 'leading', { timeoutMs: TAKEOVER_MS, what: 'the other leading' });
  t.true(Date.now() - restartedAt < TAKEOVER_MS);
  await eventually(() => again.leader === otherAddress, { what: 'the restarted process naming the new leader' });
  t.is(again.state, 'campaigning', 'the restarted process queues up behind the new leader');
});

test('a killed coordinator’s standby leads within a fraction of the lease TTL', async (t) => {
  const prefix = uniquePrefix(t);
  const config = resolveConfig(
    {
      etcd: [servers.etcdUrl],
      nats: [servers.natsUrl],
      listen: '127.0.0.1:0',
      etcdPrefix: prefix.etcd,
      subjectPrefix: prefix.nats,
      leaseTtlMs: LONG_TTL_MS,
      logLevel: 'silent',
    },
    {},
  );
  const nodes: RunningCoordinator[] = [];
  t.teardown(() => Promise.allSettled(nodes.map((n) => n.stop())).then(() => undefined));
  nodes.push(await runCoordinator(config, silentLogger()));
  const first = nodes[0] as RunningCoordinator;
  await first.whenLeader(10_000);
  nodes.push(await runCoordinator(config, silentLogger()));
  const second = nodes[1] as RunningCoordinator;
  await eventually(() => second.leader === first.advertise, { what: 'the standby naming the leader' });
  const firstTerm = first.term?.term ?? 0;

  const killedAt = Date.now();
  await first.kill();
  await second.whenLeader(TAKEOVER_MS);
  const tookMs = Date.now() - killedAt;
  t.true(tookMs < TAKEOVER_MS, `took over after ${tookMs} ms with a ${LONG_TTL_MS} ms TTL`);
  t.true((second.term?.term ?? 0) > firstTerm, 'the new term is higher');
});
