/**
 * The data plane's flow control on a real NATS server: a writer applies a
 * window only once the edge's reader has sent a credit in the current
 * epoch, is blocked at the window and freed by the next credit, and takes
 * forged or confused credits (junk, another epoch, more than it sent,
 * another task's edge) without crashing or being unblocked wrongly.
 */
import test from 'ava';
import type { NatsConnection } from '@nats-io/nats-core';
import { creditSubject, decodeCredit, encodeCredit, type Drop } from '../../src/bus/index.js';
import { DataPlane, MAX_CREDIT_WINDOW } from '../../src/sdk/data-plane.js';
import { ReaderCredits } from '../../src/sdk/flow-control.js';
import { natsConnection } from '../helpers/clients.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers({ etcd: false });
let jobs = 0;
const bytes = new TextEncoder().encode('r');

interface Writer {
  /** The job's control prefix, one per test (tests run at once). */
  prefix: string;
  plane: DataPlane;
  unblocked: string[];
  drops: Drop[];
  epoch: { now: number };
}

async function writer(nc: NatsConnection): Promise<Writer> {
  const epoch = { now: 1 };
  const unblocked: string[] = [];
  const drops: Drop[] = [];
  jobs += 1;
  const prefix = `flow.job${jobs}`;
  const plane = new DataPlane(nc, prefix, () => undefined, {
    epoch: () => epoch.now,
    onUnblocked: (producer) => unblocked.push(producer),
    onDrop: (drop) => drops.push(drop),
  });
  await plane.subscribeCredits(new Map([['a', ['b']]]));
  return { prefix, plane, unblocked, drops, epoch };
}

function send(plane: DataPlane, n: number, epoch = 1): void {
  for (let i = 0; i < n; i++) plane.publishRecord('a', 'b', bytes, epoch);
}

test('the credit message encodes as JSON and decodes strictly', (t) => {
  const credit = { epoch: 3, processed: 1200, window: 1024 };
  t.is(Buffer.from(encodeCredit(credit)).toString(), '{"epoch":3,"processed":1200,"window":1024}');
  t.deepEqual(decodeCredit(encodeCredit(credit)), { credit });
  t.deepEqual(decodeCredit(Buffer.from('{"epoch":3,"processed":1,"window":2,"more":true}')), {
    credit: { epoch: 3, processed: 1, window: 2 },
  });
  for (const junk of [
    '',
    'x',
    '[]',
    'null',
    '{"epoch":1,"processed":-1,"window":2}',
    '{"epoch":1.5,"processed":1,"window":2}',
  ]) {
    t.true('error' in decodeCredit(Buffer.from(junk)), junk);
  }
  t.true('error' in decodeCredit(Buffer.from('{"epoch":1,"processed":1,"window":0}')), 'a window of 0');
  t.true('error' in decodeCredit(Buffer.from(`{"epoch":1,"processed":1,"window":1,"pad":"${'x'.repeat(300)}"}`)));
});

test('a writer without credits is never blocked; after a credit it blocks at the window and a credit frees it', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const w = await writer(nc);
  const flow = w.plane.flowOf('a');
  send(w.plane, 5000);
  t.is(flow.over, 0, 'no credit yet: no window');
  const credit = (processed: number, window: number, epoch = 1): void =>
    nc.publish(creditSubject(w.prefix, 'a', 'b'), encodeCredit({ epoch, processed, window }));
  credit(4990, 100);
  await nc.flush();
  t.is(flow.over, 0, 'the credit arrived; 10 unprocessed, under the window');
  send(w.plane, 90);
  t.is(flow.over, 1, '100 unprocessed: at the window');
  credit(5000, 100);
  await eventually(() => flow.over === 0);
  t.deepEqual(w.unblocked, ['a']);
  send(w.plane, 90);
  t.is(flow.over, 1);
  // A credit for more than was sent counts as what was sent.
  credit(1_000_000, 100);
  await eventually(() => flow.over === 0);
  send(w.plane, 99);
  t.is(flow.over, 0, '99 since what was sent when the forged credit came');
  send(w.plane, 1);
  t.is(flow.over, 1);
});

test('junk, other epochs and unknown edges are dropped; a new epoch lapses the window until its first credit', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const w = await writer(nc);
  const flow = w.plane.flowOf('a');
  const subject = creditSubject(w.prefix, 'a', 'b');
  nc.publish(subject, encodeCredit({ epoch: 1, processed: 0, window: 10 }));
  await nc.flush();
  send(w.plane, 10);
  t.is(flow.over, 1, 'windowed');
  nc.publish(subject, Buffer.from('{"epoch":'));
  nc.publish(subject, encodeCredit({ epoch: 7, processed: 10, window: 10 }));
  nc.publish(creditSubject(w.prefix, 'a', 'zz'), encodeCredit({ epoch: 1, processed: 10, window: 10 }));
  await nc.flush();
  t.deepEqual(
    w.drops.map((d) => d.reason),
    ['undecodable', 'other-epoch', 'other-sender'],
  );
  t.is(flow.over, 1, 'none of them freed the writer');
  nc.publish(subject, encodeCredit({ epoch: 1, processed: 3, window: MAX_CREDIT_WINDOW * 4 }));
  await eventually(() => flow.over === 0);
  t.deepEqual(w.unblocked, ['a'], 'a credit with a huge window (taken as the largest) freed it');
  // A recovery: the new epoch has no credit yet, so no window.
  w.epoch.now = 2;
  w.plane.resetFlow();
  t.is(flow.over, 0);
  send(w.plane, 50, 2);
  t.is(flow.over, 0);
  nc.publish(subject, encodeCredit({ epoch: 2, processed: 0, window: 40 }));
  await eventually(() => flow.over === 1);
  t.pass('the first credit of epoch 2 applies its window');
});

test("a reader's credits are cumulative in the epoch, start below 0 by restored records, and are repeated", (t) => {
  const sent: Array<{ from: string; processed: number; epoch: number }> = [];
  const credits = new ReaderCredits('b', ['a', 'c'], 8, (from, _to, credit) => sent.push({ from, ...credit }));
  credits.begin(4, new Map([['a', 3]]));
  t.deepEqual(sent.splice(0), [
    { from: 'a', processed: 0, epoch: 4, window: 8 },
    { from: 'c', processed: 0, epoch: 4, window: 8 },
  ] as never);
  for (let i = 0; i < 3; i++) credits.processed('a');
  t.true(
    sent.splice(0).every((c) => c.processed === 0),
    'the restored records of a are not counted',
  );
  for (let i = 0; i < 2; i++) credits.processed('a');
  t.like(sent.splice(0), [{ from: 'a', processed: 1 }], 'a credit every quarter of the window');
  credits.processed('c');
  // Whole milliseconds: with a fractional now, (now + 1000) - now may come out just under 1000.
  const now = Math.floor(performance.now());
  credits.tick(now);
  t.like(
    sent.splice(0),
    [
      { from: 'a', processed: 2 },
      { from: 'c', processed: 1 },
    ],
    'untold progress goes out at the next tick',
  );
  credits.tick(now + 10);
  t.deepEqual(sent.splice(0), [], 'nothing new');
  credits.tick(now + 1000);
  t.is(sent.splice(0).length, 2, 'repeated after a second');
  credits.stop();
  credits.processed('a');
  credits.tick(now + 5000);
  t.deepEqual(sent, [], 'a stopped reader sends nothing');
});
