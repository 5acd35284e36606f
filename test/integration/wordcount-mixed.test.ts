/**
 * The word count across languages: its split tasks in the Go worker
 * (go/src/ckpt/examples/wordcount-split), its count and sink tasks in
 * TypeScript workers. The Go worker is SIGKILLed while input flows and
 * restarted; the output must still be exactly once, and every record the
 * Go splits send must go to the TypeScript count task owning its key.
 * A second run has the sink in Go as well (its exactly-once JetStream
 * sink), and SIGKILLs both Go workers. Real etcd, NATS, coordinator and
 * worker processes.
 */
import { execFileSync } from 'node:child_process';
import { headers } from '@nats-io/nats-core';
import test from 'ava';
import { GO_TS_WORKERS, TS_WORKERS, workersOfLangs, type WorkerPlan } from '../../examples/wordcount/job.js';
import { RoutingWatch } from '../../examples/wordcount/routing.js';
import { runWordCount } from '../../examples/wordcount/run.js';
import { connectNats, edgeSubject, partitionOf } from '../../src/internal.js';
import { useServers } from '../helpers/servers.js';

const servers = useServers({ etcd: false });

function hasGo(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('LANGS chooses the workers: TypeScript alone, or Go splits beside TypeScript', (t) => {
  t.is(workersOfLangs(undefined), TS_WORKERS);
  t.is(workersOfLangs('ts'), TS_WORKERS);
  t.is(workersOfLangs('go,ts'), GO_TS_WORKERS);
  t.is(workersOfLangs('TS, go'), GO_TS_WORKERS);
  t.throws(() => workersOfLangs('go'), { message: /LANGS=go: the word count runs with LANGS=ts .* or LANGS=go,ts/ });
  t.throws(() => workersOfLangs('rust,ts'), { message: /LANGS=rust,ts/ });
});

test('the routing watch reports a word sent to a count task that does not own it, or keyed wrongly', async (t) => {
  const nc = await connectNats([servers.natsUrl], 'routing-watch-test');
  t.teardown(() => nc.close());
  const watch = new RoutingWatch(nc, 'routing', ['split-0'], ['count-0', 'count-1']);
  const owner = (word: string): string => `count-${partitionOf(word, 2)}`;
  const other = (word: string): string => (owner(word) === 'count-0' ? 'count-1' : 'count-0');
  const send = (to: string, word: string, key = encodeURIComponent(word)): void => {
    const h = headers();
    h.set('ckpt-epoch', '1');
    h.set('ckpt-key', key);
    nc.publish(edgeSubject('ckpt.routing', 'split-0', to), word, { headers: h });
  };
  send(owner('état'), 'état');
  send(other('barrier'), 'barrier');
  send(owner('river'), 'river', 'river%20');
  // The watch subscribes on this connection: the server delivers what was published before the flush's answer.
  await nc.flush();
  const report = watch.stop();
  t.is(report.records, 3);
  t.deepEqual(report.problems, [
    `split-0 -> ${other('barrier')}: "barrier" went to ${other('barrier')}, its key group is ${owner('barrier')}'s`,
    `split-0 -> ${owner('river')}: key header "river%20" for the word "river"`,
  ]);
});

const goWorker = GO_TS_WORKERS.findIndex((w) => w.lang === 'go');

// Without Go (make system-deps installs it) the mixed-language word count cannot run.
const withGo = hasGo() ? test.serial : test.serial.skip;

withGo('the word count with Go split tasks is exactly-once when the Go worker is SIGKILLed mid-run', async (t) => {
  // The first build of the Go worker compiles gRPC and NATS: minutes on a busy machine.
  t.timeout(400_000);
  const r = await runWordCount({
    sentences: 4000,
    feedMs: 3000,
    intervalMs: 300,
    settleTimeoutMs: 90_000,
    workers: GO_TS_WORKERS,
    kills: [{ at: 0.5, worker: goWorker }],
    log: (line) => t.log(line),
  });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kill caused a recovery');
  t.true(r.checkpoints >= 2);
  t.true(r.routedRecords >= r.verdict.updates, 'the partitioning of every split-count record was checked');
});

/** Splits and sink in Go workers, counts in TypeScript: records cross languages on both edges of the counts. */
const GO_SINK_WORKERS: readonly WorkerPlan[] = [
  { lang: 'go', tasks: ['split-0', 'split-1'] },
  { lang: 'ts', tasks: ['count-0', 'count-1'] },
  { lang: 'go', tasks: ['sink'] },
];

withGo('the word count with its sink in Go is exactly-once when both Go workers are SIGKILLed mid-run', async (t) => {
  t.timeout(400_000);
  const r = await runWordCount({
    sentences: 4000,
    feedMs: 3000,
    intervalMs: 300,
    settleTimeoutMs: 90_000,
    workers: GO_SINK_WORKERS,
    kills: [
      { at: 0.3, worker: 2 },
      { at: 0.65, worker: 0 },
    ],
    log: (line) => t.log(line),
  });
  t.deepEqual(r.verdict.problems, []);
  t.true(r.verdict.ok);
  t.true(r.recoveries >= 1, 'the kills caused recoveries (two kills close together may share one)');
  t.is(r.recoveryMs.length, 2);
});
