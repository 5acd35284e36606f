/**
 * Property-based fuzzing of what an SDK worker receives on NATS: control
 * messages of all four kinds built from the proto types (ids, epochs and
 * terms near the real ones, 0, 2^53 and beyond; other job ids, unicode,
 * long strings; messages on another kind's subject), barriers and records
 * on the data subject with every sort of header, the same mutated (bytes
 * flipped, truncated, extended), and random bytes, all published at a
 * running job. Afterwards the worker is up, the job still commits a
 * checkpoint, and the worker believes only what its session told it: the
 * coordinator's epoch and term, and no checkpoint id the coordinator never
 * handed out.
 *
 * CKPT_FUZZ_N sets the number of generated messages (default 1000);
 * CKPT_FUZZ_SEED replays a run.
 */
import test from 'ava';
import fc from 'fast-check';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import {
  BARRIER_HEADER,
  controlMessageCodecs,
  CONTROL_KINDS,
  EPOCH_HEADER,
  type ControlKind,
} from '../../src/bus/index.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { runningJob, type RunningJob } from '../integration/worker-harness.js';

const servers = useServers();
const codecs = controlMessageCodecs();

const RUNS = Number(process.env.CKPT_FUZZ_N ?? 1000);
const SEED = process.env.CKPT_FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.CKPT_FUZZ_SEED);

/** A number relative to what the worker believes now, or an absolute one. */
type Choice = { rel: number } | { abs: number };

/** The kinds of generated messages. */
type Kind = ControlKind | 'barrier' | 'record' | 'bytes';

interface Forgery {
  kind: Kind;
  /**
   * Where it goes: its own subject (control kinds), the data subject
   * (barriers, records), or the subject of a control kind or the data
   * subject, confusing kinds.
   */
  subject: 'own' | ControlKind | 'data';
  /** Another job's id (or any text) instead of the worker's. */
  jobId: string | undefined;
  checkpointId: Choice;
  epoch: Choice;
  term: Choice;
  /**
   * For enum fields (snapshot type, abort reason; field 4 of Trigger,
   * Barrier and CheckpointAbort): a valid value, and from 64 on also the
   * raw value itself appended on the wire, which no valid message has.
   */
  enumValue: number;
  text: string;
  fromTaskId: string;
  records: number;
  /** Header values: undefined leaves the header out. */
  epochHeader: Choice | string | undefined;
  barrierHeader: string | undefined;
  mutation: { at: number; byte: number; cut: boolean; extra: Uint8Array } | null;
  bytes: Uint8Array;
}

const HUGE = [2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 63, 2 ** 64 - 2 ** 12];

const choice: fc.Arbitrary<Choice> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -3, max: 12 }).map((rel) => ({ rel })) },
  { weight: 2, arbitrary: fc.constantFrom(0, 1, ...HUGE).map((abs) => ({ abs })) },
  { weight: 1, arbitrary: fc.maxSafeNat().map((abs) => ({ abs })) },
);

const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1000, maxLength: 4000 }),
);

const forgery: fc.Arbitrary<Forgery> = fc.record({
  kind: fc.constantFrom<Kind>('trigger', 'complete', 'abort', 'recover', 'barrier', 'record', 'bytes'),
  subject: fc.oneof(
    { weight: 8, arbitrary: fc.constant<'own'>('own') },
    { weight: 1, arbitrary: fc.constantFrom<ControlKind | 'data'>(...CONTROL_KINDS, 'data') },
  ),
  jobId: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: text }),
  checkpointId: choice,
  epoch: choice,
  term: choice,
  enumValue: fc.nat(127),
  text,
  fromTaskId: fc.oneof({ weight: 4, arbitrary: fc.constant('src') }, { weight: 1, arbitrary: text }),
  records: fc.oneof(fc.nat(100), fc.constantFrom(...HUGE)),
  epochHeader: fc.option(fc.oneof(choice, fc.string({ maxLength: 24 })), { freq: 4, nil: undefined }),
  barrierHeader: fc.option(fc.constantFrom('1', '0', 'yes', ''), { freq: 2, nil: undefined }),
  mutation: fc.option(
    fc.record({ at: fc.nat(), byte: fc.nat(255), cut: fc.boolean(), extra: fc.uint8Array({ maxLength: 16 }) }),
    { freq: 3 },
  ),
  bytes: fc.uint8Array({ maxLength: 300 }),
});

/** What the worker believes now, against which relative choices resolve. */
interface Now {
  jobId: string;
  checkpointId: number;
  epoch: number;
  term: number;
}

function resolve(c: Choice, base: number): number {
  return 'abs' in c ? c.abs : Math.max(0, base + c.rel);
}

/** The payload of a forgery; throws when a field cannot be encoded (the forgery is then sent as raw bytes). */
function payload(f: Forgery, now: Now): Uint8Array {
  const jobId = f.jobId ?? now.jobId;
  const checkpointId = resolve(f.checkpointId, now.checkpointId);
  const epoch = resolve(f.epoch, now.epoch);
  const term = resolve(f.term, now.term);
  const base = { jobId, checkpointId, epoch, term };
  const valid = (count: number): never => (f.enumValue % count) as never;
  switch (f.kind) {
    case 'trigger':
      return withRawEnum(
        f,
        codecs.trigger.encode({ ...base, snapshotType: valid(3), triggeredAtMs: 1, deadlineMs: 2 }),
      );
    case 'complete':
      return codecs.complete.encode({ ...base, completedAtMs: Date.now() });
    case 'abort':
      return withRawEnum(f, codecs.abort.encode({ ...base, reason: valid(10), message: f.text }));
    case 'recover':
      return codecs.recover.encode(base);
    case 'barrier': {
      const barrier = { ...base, snapshotType: valid(3), fromTaskId: f.fromTaskId, records: f.records };
      return withRawEnum(f, codecs.barrier.encode(barrier));
    }
    case 'record':
      return new TextEncoder().encode(f.text);
    case 'bytes':
      return f.bytes;
  }
}

/** Appends field 4 (varint) with the raw enum value: the last occurrence of a field wins on decoding. */
function withRawEnum(f: Forgery, bytes: Uint8Array): Uint8Array {
  if (f.enumValue < 64) return bytes;
  const out = new Uint8Array(bytes.length + 2);
  out.set(bytes);
  out.set([0x20, f.enumValue], bytes.length);
  return out;
}

function mutate(bytes: Uint8Array, m: Forgery['mutation']): Uint8Array {
  if (m === null) return bytes;
  const out = Uint8Array.from(bytes);
  if (out.length > 0) out[m.at % out.length] = m.byte;
  const cut = m.cut ? out.subarray(0, m.at % (out.length + 1)) : out;
  const joined = new Uint8Array(cut.length + m.extra.length);
  joined.set(cut);
  joined.set(m.extra, cut.length);
  return joined;
}

function headersOf(f: Forgery, now: Now): MsgHdrs | undefined {
  const barrier = f.kind === 'barrier' ? (f.barrierHeader ?? '1') : f.barrierHeader;
  if (f.epochHeader === undefined && barrier === undefined) return undefined;
  const h = natsHeaders();
  if (f.epochHeader !== undefined) {
    const value = typeof f.epochHeader === 'string' ? f.epochHeader : String(resolve(f.epochHeader, now.epoch));
    if (value !== '') h.set(EPOCH_HEADER, value);
  }
  if (barrier !== undefined && barrier !== '') h.set(BARRIER_HEADER, barrier);
  return h;
}

/** Publishes one forgery at the job; returns the kind it counts as. */
function publish(job: RunningJob, f: Forgery): string {
  const now: Now = {
    jobId: job.jobId,
    checkpointId: job.completes.at(-1) ?? 0,
    epoch: job.worker.epoch,
    term: job.worker.confirmed.term,
  };
  let bytes: Uint8Array;
  let kind: string = f.kind;
  try {
    bytes = mutate(payload(f, now), f.mutation);
  } catch {
    bytes = f.bytes;
    kind = 'bytes';
  }
  const own = f.kind === 'barrier' || f.kind === 'record' || f.kind === 'bytes' ? 'data' : f.kind;
  const target = f.subject === 'own' ? own : f.subject;
  const subject = target === 'data' ? job.subjects.edge('src', 'sink') : job.subjects[target];
  const headers = headersOf(f, now);
  job.nc.publish(subject, bytes, headers === undefined ? undefined : { headers });
  return target === own ? kind : `${kind}-on-${target}`;
}

test('generated and mutated NATS messages leave an SDK worker up, checkpointing, believing only its session', async (t) => {
  // Failures are not tolerated: a checkpoint a forgery spoiled makes the job recover, which resets what sources took.
  const job = await runningJob(t, servers, {
    policy: { intervalMs: 200, timeoutMs: 2000, tolerableFailures: 0 },
    logLevel: 'info',
  });
  const { worker } = job;
  const counts: Record<string, number> = {};
  const restores: number[] = [];
  worker.on('restored', (e) => restores.push(e.epoch));
  let declines = 0;
  worker.on('checkpoint-declined', () => (declines += 1));
  t.log(`seed ${SEED}, ${RUNS} messages`);
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(forgery, async (f) => {
      const kind = publish(job, f);
      counts[kind] = (counts[kind] ?? 0) + 1;
      // Interleave with the job's own traffic: a pause every 50 messages.
      if (++sent % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      return worker.state === 'running';
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  await job.nc.flush();
  t.log(`messages per kind: ${JSON.stringify(Object.fromEntries(Object.entries(counts).sort()))}`);
  t.is(
    Object.values(counts).reduce((a, b) => a + b, 0),
    RUNS,
  );

  const before = Math.max(0, ...job.completes);
  const committed = await job.committedAbove(before, 90_000);
  t.is(worker.state, 'running', 'the worker is up');

  const info = await eventually(
    async () => {
      const { job: j } = await job.c.client.getJob({ jobId: job.jobId });
      return j?.attempt === 'JOB_ATTEMPT_RUNNING' && j.epoch === worker.epoch ? j : undefined;
    },
    { timeoutMs: 30_000, what: 'the worker in the job’s epoch' },
  );
  t.is(worker.epoch, info.epoch, 'the epoch is the coordinator’s');
  t.is(worker.confirmed.term, job.c.running.term?.term ?? 0, 'the term is the coordinator’s');
  const listed = await job.c.query.listCheckpoints({ jobId: job.jobId });
  const handedOut = Math.max(...listed.checkpoints.map((c) => c.checkpointId));
  t.true(worker.confirmed.checkpointId >= committed);
  t.true(
    worker.confirmed.checkpointId <= handedOut,
    `confirmed ${worker.confirmed.checkpointId}, coordinator ${handedOut}`,
  );
  // A completion counts for a checkpoint the worker acknowledged and the coordinator accepted; a forged
  // one of such an id is believed (bus.proto), but never one of an id the coordinator did not trigger.
  const hooked = [...new Set(job.commits)];
  const states = await Promise.all(
    hooked.map(async (checkpointId) => {
      const { checkpoint } = await job.c.query.getCheckpoint({ jobId: job.jobId, checkpointId });
      return checkpoint?.state;
    }),
  );
  t.true(
    states.every((state) => state !== undefined),
    'the commit hook ran only for checkpoints the coordinator triggered',
  );
  t.true(job.commits.every((id) => id <= handedOut));
  const uncommitted = states.filter((state) => state !== 'CHECKPOINT_STATE_COMPLETED').length;
  t.log(`commit hook: ${hooked.length} checkpoints, ${uncommitted} of them acknowledged but not committed`);
  const dropLines = job.log.lines.filter((l) => typeof l.dropped === 'number').length;
  t.log(`while fuzzed: ${restores.length} restores, ${declines} declined triggers, ${dropLines} drop log lines`);
});
