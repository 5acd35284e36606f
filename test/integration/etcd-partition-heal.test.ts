/**
 * A partition from etcd that heals, on real etcd through a proxy: after a
 * few failed calls the etcd client stops calling the host for a while, and
 * the store must use it again soon after it answers. With etcd3's default
 * (5 s without a call through, whatever happens meanwhile), every commit
 * of a coordinator failed for up to 5 s after the link came back, and a
 * leader that could not confirm its election key for that long stepped
 * down.
 */
import test from 'ava';
import { startTcpProxy } from '../../src/dev/index.js';
import { createEtcdStore } from '../../src/store/index.js';
import { HOST_RETRY_MAX_MS } from '../../src/store/host-breaker.js';
import { uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers();

/** How often the test calls etcd while it waits. */
const CALL_EVERY_MS = 100;
/** How long after the link comes back the store must answer: well under etcd3's default of 5 s. */
const ANSWER_WITHIN_MS = 2500;

test('the store calls etcd again within a second of a healed partition, not after 5 s', async (t) => {
  t.true(HOST_RETRY_MAX_MS + 1000 < ANSWER_WITHIN_MS);
  const proxy = await startTcpProxy({ target: new URL(servers.etcdUrl).host });
  t.teardown(() => proxy.close());
  const store = createEtcdStore({
    hosts: [`http://${proxy.address}`],
    prefix: uniquePrefix(t).etcd,
    requestTimeoutMs: 1000,
  });
  t.teardown(() => store.close());
  t.deepEqual((await store.loadJobs()).jobs, []);

  proxy.cut();
  const failures: string[] = [];
  while (!failures.some((m) => /circuit breaker/i.test(m))) {
    const err = await store.loadJobs().then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    t.not(err, undefined, 'a call through a cut link failed');
    failures.push(err ?? '');
    t.true(failures.length < 50, `the client never stopped calling the cut host: ${failures.slice(-3).join(' | ')}`);
  }

  proxy.restore();
  const healedAt = Date.now();
  let answeredAt: number | undefined;
  const later: string[] = [];
  while (answeredAt === undefined && Date.now() - healedAt < 10_000) {
    try {
      await store.loadJobs();
      answeredAt = Date.now();
    } catch (err) {
      later.push(err instanceof Error ? err.message : String(err));
      await new Promise((resolve) => setTimeout(resolve, CALL_EVERY_MS));
    }
  }
  t.not(answeredAt, undefined, `etcd never answered again: ${later.slice(-2).join(' | ')}`);
  const ms = (answeredAt ?? 0) - healedAt;
  t.true(ms < ANSWER_WITHIN_MS, `the store answered ${ms} ms after the link came back (${later.length} calls refused)`);
});
