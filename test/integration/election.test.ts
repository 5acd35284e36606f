/**
 * The leader election on real etcd, candidate by candidate: the oldest
 * candidacy leads and standbys name it; a candidate waits for the one just
 * before it and then looks again; a leader whose lease is revoked behind its
 * back steps down and queues up again; `stop(true)` hands over at once,
 * `stop(false)` only once the lease expired; after etcd comes back from a
 * crash, one candidate leads again.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../src/dev/index.js';
import { silentLogger } from '../../src/log/index.js';
import { electionWatchBackoff } from '../../src/server/election.js';
import { Leadership, type LeaderTerm } from '../../src/server/leadership.js';
import { etcdClient, eventually, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers({ nats: false });

/** Deadline of the candidates' unary etcd calls, as a coordinator's `etcdTimeoutMs`. */
const CALL_MS = 2000;

/** One candidate and what it heard, in order: `elected <term>` or `deposed`. */
interface Candidate {
  readonly name: string;
  readonly leadership: Leadership;
  readonly heard: string[];
  readonly terms: LeaderTerm[];
}

/** A candidate with its own etcd client, configured as `runCoordinator` does; stopped when the test ends. */
function candidate(t: ExecutionContext, etcdUrl: string, prefix: string, name: string, leaseTtlMs: number): Candidate {
  const client = new Etcd3({
    hosts: etcdUrl,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + CALL_MS }),
    faultHandling: { watchBackoff: electionWatchBackoff() },
  });
  const heard: string[] = [];
  const terms: LeaderTerm[] = [];
  const leadership = new Leadership({
    client,
    prefix,
    leaseTtlMs,
    logger: silentLogger(),
    onElected: (term) => {
      heard.push(`elected ${term.term}`);
      terms.push(term);
    },
    onDeposed: () => heard.push('deposed'),
  });
  t.teardown(async () => {
    await leadership.stop(true);
    client.close();
  });
  leadership.start(name);
  return { name, leadership, heard, terms };
}

/** Waits until `c` leads. */
async function leads(c: Candidate, timeoutMs = 10_000): Promise<LeaderTerm> {
  await eventually(() => c.leadership.state === 'leading', { timeoutMs, what: `${c.name} leading` });
  const term = c.leadership.term;
  if (term === undefined) throw new Error(`${c.name} leads without a term`);
  return term;
}

/** Revokes the lease behind `term`'s key as an operator would, with etcdctl. */
async function revokeLease(etcdUrl: string, term: LeaderTerm): Promise<void> {
  const leaseHex = term.key.slice(term.key.lastIndexOf('/') + 1);
  await promisify(execFile)('etcdctl', ['--endpoints', etcdUrl, 'lease', 'revoke', leaseHex], { timeout: 10_000 });
}

test('the oldest candidacy leads under a key named by its lease; stop(true) hands over at once', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const ttlMs = 10_000;
  const a = candidate(t, servers.etcdUrl, prefix, 'a:1', ttlMs);
  const first = await leads(a);
  const b = candidate(t, servers.etcdUrl, prefix, 'b:2', ttlMs);
  await eventually(() => b.leadership.leader === 'a:1', { what: 'b naming a as the leader' });
  t.is(b.leadership.state, 'campaigning');

  // b may name the leader before its own candidacy's key is written: wait for that key.
  const etcd = etcdClient(t, servers.etcdUrl);
  const keys = async (): Promise<number> => (await etcd.getAll().prefix(`${prefix}election/leader/`).keys()).length;
  await eventually(async () => (await keys()) >= 2 || undefined, { what: "b's candidacy key" });
  const kv = (await etcd.getAll().prefix(`${prefix}election/leader/`).exec()).kvs;
  t.is(kv.length, 2, 'one key per candidate');
  const own = kv.find((k) => k.key.toString() === first.key);
  t.is(own?.value.toString(), 'a:1');
  t.is(first.key, `${prefix}election/leader/${BigInt(own?.lease ?? 0).toString(16)}`);
  t.is(first.createRevision, own?.create_revision ?? '');
  t.is(first.term, Number(first.createRevision));

  const stoppedAt = Date.now();
  await a.leadership.stop(true);
  const second = await leads(b);
  const tookMs = Date.now() - stoppedAt;
  t.true(tookMs < ttlMs / 2, `b led ${tookMs} ms after a resigned, long before a's lease would expire`);
  t.true(second.term > first.term);
  t.deepEqual(a.heard, [`elected ${first.term}`], 'stop does not call onDeposed');
});

test('a waiting candidate whose predecessor goes waits on behind the leader', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const a = candidate(t, servers.etcdUrl, prefix, 'a:1', 5000);
  await leads(a);
  const b = candidate(t, servers.etcdUrl, prefix, 'b:2', 5000);
  await eventually(() => b.leadership.leader === 'a:1', { what: 'b naming a' });
  const c = candidate(t, servers.etcdUrl, prefix, 'c:3', 5000);
  await eventually(() => c.leadership.leader === 'a:1', { what: 'c naming a' });

  await b.leadership.stop(true);
  const etcd = etcdClient(t, servers.etcdUrl);
  await eventually(async () => (await etcd.getAll().prefix(prefix).keys()).length === 2, { what: "b's key gone" });
  t.is(a.leadership.state, 'leading');
  t.is(c.leadership.state, 'campaigning', 'c looked again and found a before it');

  await a.leadership.stop(true);
  await leads(c);
  t.deepEqual(c.heard.length, 1);
});

test('a leader whose lease is revoked behind its back is deposed, and queues up again behind the next', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const a = candidate(t, servers.etcdUrl, prefix, 'a:1', 5000);
  const first = await leads(a);
  const b = candidate(t, servers.etcdUrl, prefix, 'b:2', 5000);
  await eventually(() => b.leadership.leader === 'a:1', { what: 'b naming a' });

  await revokeLease(servers.etcdUrl, first);
  const second = await leads(b, 5000);
  await eventually(() => a.heard.includes('deposed'), { timeoutMs: 5000, what: 'a deposed' });
  t.true(second.term > first.term);
  await eventually(() => a.leadership.state === 'campaigning' && a.leadership.leader === 'b:2', {
    what: 'a campaigning again, naming b',
  });

  await revokeLease(servers.etcdUrl, second);
  const third = await leads(a, 5000);
  t.true(third.term > second.term, 'each change of leader has a higher term');
  t.deepEqual(a.heard, [`elected ${first.term}`, 'deposed', `elected ${third.term}`], 'the events alternate');
  await eventually(() => b.heard.length === 2, { what: 'b deposed' });
  t.deepEqual(b.heard, [`elected ${second.term}`, 'deposed']);
});

test('stop(false) leaves the lease to expire: the next candidate leads only after about a TTL', async (t) => {
  const prefix = uniquePrefix(t).etcd;
  const ttlMs = 3000;
  const a = candidate(t, servers.etcdUrl, prefix, 'a:1', ttlMs);
  await leads(a);
  const b = candidate(t, servers.etcdUrl, prefix, 'b:2', ttlMs);
  await eventually(() => b.leadership.leader === 'a:1', { what: 'b naming a' });

  const stoppedAt = Date.now();
  await a.leadership.stop(false);
  await leads(b, 4 * ttlMs);
  const tookMs = Date.now() - stoppedAt;
  t.true(tookMs > ttlMs / 2, `b led ${tookMs} ms after a stopped, once a's lease expired`);
});

test('after etcd crashed and came back, one candidate leads again', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const prefix = uniquePrefix(t).etcd;
  const ttlMs = 2000;
  const a = candidate(t, etcd.clientUrl, prefix, 'a:1', ttlMs);
  const first = await leads(a);
  const b = candidate(t, etcd.clientUrl, prefix, 'b:2', ttlMs);
  await eventually(() => b.leadership.leader === 'a:1', { what: 'b naming a' });

  await etcd.kill();
  await eventually(() => a.heard.includes('deposed'), { timeoutMs: 4 * ttlMs, what: 'a stepping down' });
  await etcd.restart();
  const leader = await eventually(
    () => {
      const leading = [a, b].filter((c) => c.leadership.state === 'leading');
      return leading.length === 1 ? leading[0] : undefined;
    },
    { timeoutMs: 30_000, what: 'one leader after the restart' },
  );
  t.true((leader.leadership.term?.term ?? 0) > first.term);
  const standby = leader === a ? b : a;
  await eventually(() => standby.leadership.leader === leader.name, { what: 'the standby naming the leader' });
});
