/**
 * Junk on a running job's control and data subjects: bytes that do not
 * decode, another job's messages, barriers from a sender other than their
 * subject's, records without a proper epoch. The SDK worker stays up and
 * nothing changes (no recovery, no record counted twice, checkpoints go
 * on), and its log shows a bounded number of lines about it, however many
 * messages came.
 */
import test from 'ava';
import {
  barrierHeaders,
  BARRIER_HEADER,
  controlMessageCodecs,
  CONTROL_KINDS,
  EPOCH_HEADER,
} from '../../src/bus/index.js';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { decodeKeyedState } from '../../src/sdk/index.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { runningJob, type LogLine } from './worker-harness.js';

const servers = useServers();
const codecs = controlMessageCodecs();

/** Messages of each kind of junk. */
const PER_KIND = 300;

/** A small deterministic generator, so that a failure can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(random: () => number, max: number): Uint8Array {
  return Uint8Array.from({ length: Math.floor(random() * max) }, () => Math.floor(random() * 256));
}

function headersOf(entries: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(entries)) h.set(k, v);
  return h;
}

const isDropLine = (line: LogLine): boolean => typeof line.msg === 'string' && line.msg.endsWith('messages dropped');

test('junk on the control and data subjects changes nothing and costs a bounded number of log lines', async (t) => {
  const job = await runningJob(t, servers);
  const { worker, nc, subjects, jobId } = job;
  const epoch = worker.epoch;
  const term = worker.welcome?.term ?? 0;
  const failures: string[] = [];
  worker.on('failed', (e) => failures.push(e.error.message));
  const restores: number[] = [];
  worker.on('restored', (e) => restores.push(e.epoch));
  const random = prng(7);
  const from = job.log.lines.length;
  let sent = 0;
  const publish = (subject: string, payload: Uint8Array, headers?: MsgHdrs): void => {
    nc.publish(subject, payload, headers === undefined ? undefined : { headers });
    sent += 1;
  };

  for (let i = 0; i < PER_KIND; i += 1) {
    for (const kind of CONTROL_KINDS) {
      publish(subjects[kind], randomBytes(random, 200));
      const other = { jobId: 'other-job', checkpointId: 1 + i, epoch, term };
      publish(subjects[kind], encode(kind, other));
      publish(subjects[kind], encode(kind, { ...other, jobId: `${jobId}\u202e\u0000${'é'.repeat(i % 50)}` }));
    }
    const edge = subjects.edge('src', 'sink');
    const barrier = { jobId, checkpointId: 1 + i, epoch, snapshotType: 'SNAPSHOT_TYPE_FULL' as const, records: 0 };
    publish(edge, randomBytes(random, 200));
    publish(edge, randomBytes(random, 200), barrierHeaders(epoch));
    publish(edge, codecs.barrier.encode({ ...barrier, fromTaskId: 'mallory' }), barrierHeaders(epoch));
    publish(edge, codecs.barrier.encode({ ...barrier, fromTaskId: 'src', jobId: 'other-job' }), barrierHeaders(epoch));
    publish(edge, Uint8Array.of(1), headersOf({ [EPOCH_HEADER]: 'abc' }));
    publish(edge, Uint8Array.of(1), headersOf({ [EPOCH_HEADER]: '99999999999999999999', [BARRIER_HEADER]: '1' }));
    publish(edge, Uint8Array.of(1), headersOf({ [EPOCH_HEADER]: String(epoch + 1) }));
  }
  await nc.flush();
  const sentAt = Date.now();

  // A message sent after the junk on the same connection arrives after all of it: a recover (advisory).
  const marker = worker.waitFor('recover', (r) => r.epoch === epoch + 1, { timeoutMs: 10_000 });
  await job.forge('recover', codecs.recover.encode({ jobId, epoch: epoch + 1, checkpointId: 0, term }));
  await marker;

  const before = job.completes.at(-1) ?? 0;
  const sinkState = new Map<number, number>();
  worker.on('snapshot', (e) => {
    if (e.taskId === 'sink') sinkState.set(e.checkpointId, Number(decodeKeyedState(e.bytes).get('n') ?? 0));
  });
  const positions = new Map<number, number>();
  worker.on('checkpoint-acked', (e) => {
    const offset = e.snapshots.find((s) => s.taskId === 'src')?.positions?.[0]?.offset;
    if (offset !== undefined) positions.set(e.checkpointId, Number(offset));
  });
  // The next commit may be of a checkpoint snapshotted before the listeners: take the one after it.
  const after = await job.committedAbove(await job.committedAbove(before));
  await eventually(() => positions.has(after) && sinkState.has(after), { what: 'the figures of the checkpoint' });
  t.is(
    sinkState.get(after),
    positions.get(after),
    'the sink counted every record of the source once, and nothing else',
  );

  t.is(worker.state, 'running');
  t.is(worker.epoch, epoch);
  t.is((await job.c.client.getJob({ jobId })).job?.epoch, epoch, 'no recovery');
  t.deepEqual(failures, []);
  t.deepEqual(restores, []);

  const lines = job.log.lines.slice(from);
  const drops = lines.filter(isDropLine);
  const elapsedS = Math.ceil((Date.now() - sentAt) / 10_000) + 1;
  // Per kind of message (6) and severity (2), one line and then at most one per 10 s.
  t.true(drops.length <= 12 * elapsedS, `${drops.length} drop lines for ${sent} messages`);
  t.true(lines.filter((l) => l.level >= 40).length <= drops.length, 'every warning is a drop line');
  await worker.stop();
  const counted = job.log.lines
    .slice(from)
    .filter(isDropLine)
    .reduce((n, l) => n + Number(l.dropped), 0);
  t.true(counted >= sent, `${counted} drops counted for ${sent} junk messages`);
  t.log(`${sent} junk messages, ${drops.length} drop lines`);
});

function encode(
  kind: (typeof CONTROL_KINDS)[number],
  m: { jobId: string; checkpointId: number; epoch: number; term: number },
): Uint8Array {
  switch (kind) {
    case 'trigger':
      return codecs.trigger.encode(m);
    case 'complete':
      return codecs.complete.encode(m);
    case 'abort':
      return codecs.abort.encode(m);
    case 'recover':
      return codecs.recover.encode(m);
  }
}
