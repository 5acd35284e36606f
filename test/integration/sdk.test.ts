/**
 * The worker SDK against the real coordinator on real etcd and NATS:
 * barrier alignment, record order, the JetStream source and publication,
 * the exactly-once JetStream sink, and coordinated recovery after a task
 * failure.
 */
import test, { type ExecutionContext } from 'ava';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { edgeSubject } from '../../src/bus/index.js';
import { CkptError } from '../../src/core/errors.js';
import { createLogger, silentLogger } from '../../src/log/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import {
  createLocalDirectoryBackend,
  decodeKeyedState,
  decodeUnalignedSnapshot,
  jetStreamInput,
  jetStreamSink,
  jetStreamSource,
  Worker,
  type AnyTask,
  type RestoredEvent,
  type StateBackend,
  type Task,
  type TaskContext,
  type WorkerEventMap,
  type WorkerOptions,
} from '../../src/sdk/index.js';
import { publishToStream } from '../../src/sdk/jetstream-publish.js';
import { natsConnection } from '../helpers/clients.js';
import { sample } from '../helpers/metrics-text.js';
import { logSource, MemoryLog } from '../helpers/memory-source.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();

/** A task appending every record's text to `seen` and to the keyed state entry `seen`. */
function recorder(seen: string[]): Task {
  return {
    process(record, ctx) {
      seen.push(record.text());
      const list = (ctx.state.get('seen') as string[] | undefined) ?? [];
      ctx.state.set('seen', [...list, record.text()]);
    },
  };
}

/** The `seen` entry of a keyed state snapshot. */
function seenIn(bytes: Uint8Array): string[] {
  return [...((decodeKeyedState(bytes).get('seen') as string[] | undefined) ?? [])].sort();
}

interface Harness {
  c: TestCoordinator;
  /** Where the snapshots are stored. */
  dir: string;
  state: StateBackend;
  nc: NatsConnection;
  worker(
    workerId: string,
    tasks: Record<string, AnyTask>,
    state?: StateBackend,
    options?: Partial<WorkerOptions>,
  ): Promise<Worker>;
  /** A worker created and started as `worker` does, without waiting for its start. */
  startWorker(
    workerId: string,
    tasks: Record<string, AnyTask>,
    options?: Partial<WorkerOptions>,
  ): { worker: Worker; started: Promise<void> };
  checkpoint(): Promise<CheckpointSummary__Output>;
}

/** A coordinator, a job, a snapshot directory and a NATS connection for one test. */
async function harness(t: ExecutionContext, spec: JobSpec): Promise<Harness> {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-sdk-'));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  const nc = await natsConnection(t, servers.natsUrl);
  const workers: Worker[] = [];
  t.teardown(async () => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await state.close();
    await rm(dir, { recursive: true, force: true });
  });
  const start = (
    workerId: string,
    tasks: Record<string, AnyTask>,
    backend: StateBackend,
    options: Partial<WorkerOptions>,
  ): { worker: Worker; started: Promise<void> } => {
    const w = new Worker({
      coordinator: c.address,
      nats: [servers.natsUrl],
      jobId: spec.jobId ?? '',
      workerId,
      state: backend,
      reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
      ...(process.env.CKPT_TEST_LOG === undefined ? {} : { logger: createLogger('debug', workerId) }),
      ...options,
    });
    for (const [taskId, task] of Object.entries(tasks)) w.addTask(taskId, task);
    workers.push(w);
    return { worker: w, started: w.start() };
  };
  return {
    c,
    dir,
    state,
    nc,
    async worker(workerId, tasks, backend = state, options = {}) {
      const { worker, started } = start(workerId, tasks, backend, options);
      await started;
      return worker;
    },
    startWorker(workerId, tasks, options = {}) {
      return start(workerId, tasks, state, options);
    },
    async checkpoint() {
      await c.started(spec.jobId ?? '');
      const res = await c.client.triggerCheckpoint({ jobId: spec.jobId ?? '', wait: true }, { deadlineMs: 20_000 });
      if (res.checkpoint === null) throw new Error('TriggerCheckpoint returned no summary');
      return res.checkpoint;
    },
  };
}

/** Collects every `name` event of `w` from now on. */
function collect<K extends keyof WorkerEventMap>(w: Worker, name: K): WorkerEventMap[K][0][] {
  const out: WorkerEventMap[K][0][] = [];
  (w as EventEmitter).on(name, (event: WorkerEventMap[K][0]) => out.push(event));
  return out;
}

test('aligned: records after barrier n on one input wait until barrier n arrived on every input', async (t) => {
  const spec: JobSpec = {
    jobId: 'align',
    tasks: [{ taskId: 's1' }, { taskId: 's2' }, { taskId: 'm', inputs: ['s1', 's2'] }],
  };
  const h = await harness(t, spec);
  const log1 = new MemoryLog();
  const log2 = new MemoryLog();
  let openGate: () => void = () => {};
  let gated = false;
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  const slowSnapshot = async (): Promise<Uint8Array> => {
    if (gated) await gate;
    return new Uint8Array();
  };
  const seen: string[] = [];
  const sources = await h.worker('w-sources', {
    s1: logSource(log1),
    s2: logSource(log2, { snapshot: slowSnapshot }),
  });
  // The reader's metrics say how many records reached m, processed or held back.
  const registry = new Registry();
  const reader = await h.worker('w-reader', { m: recorder(seen) }, h.state, { metrics: { registry } });
  const received = async (): Promise<number | undefined> =>
    sample(await registry.metrics(), 'ckpt_worker_records_received_total{job_id="align",task_id="m"}');
  await h.c.started('align');

  log1.push('a1', 'a2');
  log2.push('b1');
  await eventually(() => seen.length === 3, { what: 'the first records processed' });

  // What s1 sends to m, as it goes over NATS.
  const toM: string[] = [];
  const edge = h.nc.subscribe(edgeSubject(`${h.c.prefix.nats}.align`, 's1', 'm'), {
    callback: (_err, msg) => void toM.push(msg.string()),
  });
  t.teardown(() => edge.unsubscribe());
  await h.nc.flush();

  // s2's snapshot hangs, so its barrier 1 is late; s1 forwards barrier 1 and then a3, a4.
  gated = true;
  const s1Snapshotted = sources.waitFor('snapshot', (e) => e.taskId === 's1');
  const mSnapshot = reader.waitFor('snapshot', (e) => e.taskId === 'm');
  const mAcked = reader.waitFor('checkpoint-acked', (e) => e.taskIds.includes('m'));
  const done = h.checkpoint();
  const [{ checkpointId }] = await s1Snapshotted;
  log1.push('a3', 'a4');
  await eventually(() => toM.includes('a3') && toM.includes('a4'), { what: 'a3 and a4 sent to m after barrier 1' });
  // s2's barrier is held back until a3 and a4 reached m, which must not
  // process them; m's snapshot, taken once that barrier arrives, is the
  // proof: had m processed a3 or a4 before it, the snapshot would hold them.
  await eventually(async () => (await received()) === 5, { what: 'a3 and a4 reaching m' });
  t.deepEqual([...seen].sort(), ['a1', 'a2', 'b1'], 'a3 and a4 are held back while barrier 1 of s2 is missing');

  const openedAtMs = Date.now();
  openGate();
  const [snapshot] = await mSnapshot;
  t.is(snapshot.checkpointId, checkpointId);
  t.deepEqual(seenIn(snapshot.bytes), ['a1', 'a2', 'b1'], 'the snapshot of m does not contain the held records');
  const summary = await done;
  t.is(summary.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(() => seen.length === 5, { what: 'the held records processed after the snapshot' });
  t.deepEqual(seen.slice(3).sort(), ['a3', 'a4']);

  const [ack] = await mAcked;
  const entry = ack.snapshots.find((s) => s.taskId === 'm');
  // m started the checkpoint at its first barrier (the trigger plus its start delay, one clock here).
  const startedAtMs = summary.triggeredAtMs + Number(entry?.metrics?.startDelayMs ?? 0);
  const alignmentMs = Number(entry?.metrics?.alignmentMs ?? 0);
  t.true(
    alignmentMs >= openedAtMs - startedAtMs,
    `the alignment time covers the wait for s2 (${alignmentMs} ms, s2 held ${openedAtMs - startedAtMs} ms)`,
  );
  t.is(Number(entry?.metrics?.processedRecords ?? -1), 3);
  const stored = await h.state.get({
    uri: entry?.state?.uri ?? '',
    sizeBytes: Number(entry?.state?.sizeBytes),
    checksum: entry?.state?.checksum ?? '',
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
    inFlightRecords: false,
  });
  t.deepEqual(seenIn(stored), ['a1', 'a2', 'b1'], 'the stored snapshot is the one taken');
});

test('the JetStream sink makes nothing visible before its checkpoint completes, and nothing of an aborted one', async (t) => {
  const spec: JobSpec = {
    jobId: 'sink',
    tasks: [{ taskId: 'src' }, { taskId: 'out', inputs: ['src'] }],
    policy: { tolerableFailures: -1 },
  };
  const h = await harness(t, spec);
  const prefix = h.c.prefix.nats;
  const inStream = `IN_${prefix}`;
  const outStream = `OUT_${prefix}`;
  const inSubject = `${prefix}.in`;
  const outSubject = `${prefix}.out`;
  const jsm = await jetstreamManager(h.nc);
  await jsm.streams.add({ name: inStream, subjects: [inSubject] });
  t.teardown(async () => {
    await jsm.streams.delete(inStream).catch(() => false);
    await jsm.streams.delete(outStream).catch(() => false);
  });
  const js = jetstream(h.nc);
  for (const r of ['r1', 'r2', 'r3']) await js.publish(inSubject, r);

  // The sink's snapshot of checkpoint 2 cannot be stored: the sink declines it.
  const failingPut: StateBackend = {
    put: (key, bytes, signal) =>
      key.checkpointId === 2
        ? Promise.reject(new CkptError('UNAVAILABLE', 'disk full (test)'))
        : h.state.put(key, bytes, signal),
    get: (handle, signal) => h.state.get(handle, signal),
    discard: (jobId, uris) => h.state.discard(jobId, uris),
    listPieces: (jobId) => h.state.listPieces(jobId),
    close: async () => {},
  };
  // Messages as they reach the output subject, with the time they arrive.
  const arrivals: { text: string; at: number }[] = [];
  h.nc.subscribe(outSubject, { callback: (_e, m) => void arrivals.push({ text: m.string(), at: Date.now() }) });
  await h.nc.flush();

  const processed: string[] = [];
  const sink = jetStreamSink({ stream: outStream, subject: outSubject });
  const spy: Task = { ...sink, process: (r, ctx) => (processed.push(r.text()), sink.process(r, ctx)) };
  await h.worker('w-src', { src: jetStreamSource({ stream: inStream, subject: inSubject }) });
  const w = await h.worker('w-out', { out: spy }, failingPut);
  const completedAt = new Map<number, number>();
  w.on('complete', (c) => completedAt.set(c.checkpointId, Date.now()));
  await h.c.started('sink');
  await eventually(() => processed.length === 3, { what: 'the sink staged three records' });
  const info = await jsm.streams.info(outStream);
  t.is(info.state.messages, 0, 'nothing is visible before a checkpoint completes');
  t.true(info.config.duplicate_window >= 10 * 60 * 1e9, 'the sink created its stream with a 10 min duplicate window');

  const first = await h.checkpoint();
  t.is(first.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(() => arrivals.length === 3, { what: 'checkpoint 1 published' });
  t.deepEqual(
    arrivals.map((a) => a.text),
    ['r1', 'r2', 'r3'],
  );
  const firstAt = completedAt.get(first.checkpointId) ?? Infinity;
  t.true(
    arrivals.every((a) => a.at >= firstAt),
    'published only after the complete broadcast',
  );

  for (const r of ['r4', 'r5']) await js.publish(inSubject, r);
  await eventually(() => processed.length === 5, { what: 'the sink staged two more records' });
  const abortReached = w.waitFor('abort', () => true, { timeoutMs: 10_000 });
  const second = await h.checkpoint();
  t.is(second.state, 'CHECKPOINT_STATE_ABORTED');
  t.is(second.abortReason, 'ABORT_REASON_DECLINED');
  const [abort] = await abortReached;
  t.is(abort.checkpointId, second.checkpointId);
  // Once the sink's worker heard of the abort, nothing of that checkpoint is
  // published: the arrival times checked below, every one after the next
  // complete broadcast, are the proof over the whole time until then.
  t.is((await jsm.streams.info(outStream)).state.messages, 3, 'nothing of the aborted checkpoint is visible');

  const third = await h.checkpoint();
  t.is(third.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(async () => (await jsm.streams.info(outStream)).state.messages === 5, {
    what: 'the records of the aborted checkpoint published with the next completed one',
  });
  t.deepEqual(
    arrivals.map((a) => a.text),
    ['r1', 'r2', 'r3', 'r4', 'r5'],
  );
  const thirdAt = completedAt.get(third.checkpointId) ?? Infinity;
  t.true(
    arrivals.slice(3).every((a) => a.at >= thirdAt),
    "the aborted checkpoint's records wait for the next complete",
  );
  const ids: string[] = [];
  for (let seq = 1; seq <= 5; seq += 1) {
    const m = await jsm.streams.getMessage(outStream, { seq });
    ids.push(m?.header.get('Nats-Msg-Id') ?? '');
  }
  t.deepEqual(ids, [
    `sink/out/${first.checkpointId}/0`,
    `sink/out/${first.checkpointId}/1`,
    `sink/out/${first.checkpointId}/2`,
    `sink/out/${second.checkpointId}/0`,
    `sink/out/${second.checkpointId}/1`,
  ]);
});

test('a task that throws makes the job recover, and every task restores the same checkpoint', async (t) => {
  const spec: JobSpec = {
    jobId: 'recover',
    tasks: [{ taskId: 'src' }, { taskId: 'mid', inputs: ['src'] }, { taskId: 'last', inputs: ['mid'] }],
  };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  let thrown = false;
  const mid: Task = {
    process(record, ctx) {
      if (record.text() === 'boom' && !thrown) {
        thrown = true;
        throw new Error('boom (test)');
      }
      ctx.state.set('count', ((ctx.state.get('count') as number | undefined) ?? 0) + 1);
      ctx.emit(record.value, { key: record.text() });
    },
  };
  const lastSeen: string[] = [];
  const w1 = await h.worker('w1', { src: logSource(log), mid });
  const w2 = await h.worker('w2', { last: recorder(lastSeen) });
  await h.c.started('recover');
  log.push('x1', 'x2', 'x3');
  await eventually(() => lastSeen.length === 3, { what: 'the first records through' });
  const first = await h.checkpoint();
  t.is(first.state, 'CHECKPOINT_STATE_COMPLETED');

  const restored1 = collect(w1, 'restored');
  const restored2 = collect(w2, 'restored');
  const failed = w1.waitFor('failed');
  log.push('x4', 'boom', 'x5');
  const [failure] = await failed;
  t.is(failure.taskId, 'mid');
  t.regex(failure.error.message, /boom \(test\)/);
  await eventually(() => restored1.length > 0 && restored2.length > 0, { what: 'both workers restored' });
  const all: RestoredEvent[] = [...restored1, ...restored2];
  t.true(
    all.every((e) => e.checkpointId === first.checkpointId),
    JSON.stringify(all),
  );
  t.true(all.every((e) => e.epoch === all[0]?.epoch && e.epoch > failure.epoch));
  t.deepEqual(all.flatMap((e) => e.taskIds).sort(), ['last', 'mid', 'src']);
  await h.c.started('recover');

  // The source resumed after its recorded position: every record counted exactly once in mid's state.
  await eventually(() => w1.epoch === all[0]?.epoch, { what: 'the new epoch' });
  const midSnapshot = w1.waitFor('snapshot', (e) => e.taskId === 'mid');
  await eventually(() => lastSeen.includes('x5'), { what: 'the replayed records through' });
  const second = await h.checkpoint();
  t.is(second.state, 'CHECKPOINT_STATE_COMPLETED');
  const [snap] = await midSnapshot;
  t.is(decodeKeyedState(snap.bytes).get('count'), 6, 'x1..x5 and boom, each once');
  const job = await h.c.client.getJob({ jobId: 'recover' });
  t.like(job.job, { epoch: all[0]?.epoch, latestCheckpointId: second.checkpointId });
  // Retention 1: the snapshots that checkpoint `second` subsumes are released.
  const files = await eventually(async () => {
    const names = await readdir(join(h.dir, 'recover', 'mid'));
    return names.every((n) => n.startsWith(`${second.checkpointId}-`)) ? names : undefined;
  });
  t.is(files.length, 1);
});

test('a standby waits while its tasks run elsewhere and takes them over, restored, when that session ends', async (t) => {
  const spec: JobSpec = {
    jobId: 'standby',
    tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }],
  };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  const seenByPrimary: string[] = [];
  const seenByStandby: string[] = [];
  const primary = await h.worker('primary', { src: logSource(log), count: recorder(seenByPrimary) });
  await h.c.started('standby');
  const standby = h.startWorker('standby', { src: logSource(log), count: recorder(seenByStandby) }, { standby: true });
  let standbyStarted = false;
  void standby.started.then(() => (standbyStarted = true));
  log.push('a', 'b');
  await eventually(() => seenByPrimary.length === 2, { what: 'the primary processing' });
  const first = await h.checkpoint();
  t.is(first.state, 'CHECKPOINT_STATE_COMPLETED');
  const before = (await h.c.client.getJob({ jobId: 'standby' })).job;
  t.false(standbyStarted, 'the standby waits while the primary runs the tasks');
  t.is(seenByStandby.length, 0);

  const restored = standby.worker.waitFor('restored', () => true, { timeoutMs: 20_000 });
  await primary.stop();
  await standby.started;
  // The job may still show the primary's running attempt: wait for the standby's own restore.
  const [event] = await restored;
  t.like(event, { checkpointId: first.checkpointId });
  await h.c.started('standby');
  t.true((standby.worker.epoch ?? 0) > (before?.epoch ?? 0), 'the takeover is a recovery in a new epoch');

  // The source resumed after its recorded position, and the count's state came back from the checkpoint.
  const snapshot = standby.worker.waitFor('snapshot', (e) => e.taskId === 'count');
  log.push('c');
  await eventually(() => seenByStandby.includes('c'), { what: 'the standby processing' });
  t.deepEqual(seenByStandby, ['c']);
  const second = await h.checkpoint();
  t.is(second.state, 'CHECKPOINT_STATE_COMPLETED');
  const [{ bytes }] = await snapshot;
  t.deepEqual(seenIn(bytes), ['a', 'b', 'c']);
});

test('a standby whose tasks are free attaches at once; one naming an unknown task is refused', async (t) => {
  const spec: JobSpec = { jobId: 'standby-free', tasks: [{ taskId: 'src' }] };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  await h.worker('first', { src: logSource(log) }, undefined, { standby: true });
  await h.c.started('standby-free');
  const refused = h.startWorker('second', { src: logSource(log), ghost: recorder([]) }, { standby: true });
  const err = await t.throwsAsync(refused.started);
  t.like(err, { reason: 'UNKNOWN_TASK' });
});

test('a coordinator restart: workers re-attach in their epoch, tasks keep processing, checkpoints go on', async (t) => {
  const spec: JobSpec = { jobId: 'restart', tasks: [{ taskId: 'src' }, { taskId: 'sum', inputs: ['src'] }] };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  const seen: string[] = [];
  const w1 = await h.worker('w1', { src: logSource(log) });
  const w2 = await h.worker('w2', { sum: recorder(seen) });
  await h.c.started('restart');
  log.push('x1', 'x2');
  await eventually(() => seen.length === 2, { what: 'the first records' });
  const first = await h.checkpoint();
  t.is(first.state, 'CHECKPOINT_STATE_COMPLETED');
  const epoch = w1.epoch;
  const recovers = [...collect(w1, 'recover'), ...collect(w2, 'recover')];
  const lost = w2.waitFor('session-lost');
  const resumed = w2.waitFor('welcome');

  await h.c.running.stop();
  await lost;
  log.push('x3', 'x4');
  await eventually(() => seen.length === 4, { what: 'records processed while the coordinator is away' });
  await h.c.restart();
  const [welcome] = await resumed;
  t.is(welcome.epoch, epoch, 'the job resumes in the same epoch');

  await h.c.started('restart');
  const mSnapshot = w2.waitFor('snapshot', (e) => e.taskId === 'sum');
  const second = await h.checkpoint();
  t.is(second.state, 'CHECKPOINT_STATE_COMPLETED');
  t.true(second.checkpointId > first.checkpointId);
  const [snap] = await mSnapshot;
  t.deepEqual(seenIn(snap.bytes), ['x1', 'x2', 'x3', 'x4']);
  t.deepEqual(recovers, []);
  t.is(w1.epoch, epoch);
  t.is(w2.epoch, epoch);
});

test('a canceled job stops its workers', async (t) => {
  const spec: JobSpec = { jobId: 'cancel', tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }] };
  const h = await harness(t, spec);
  const w = await h.worker('w', { src: logSource(new MemoryLog()), sink: recorder([]) });
  await h.c.started('cancel');
  const stopped = w.waitFor('stopped');
  await h.c.client.cancelJob({ jobId: 'cancel' });
  await stopped;
  t.is(w.state, 'stopped');
});

test('unaligned: the snapshot is taken at the first barrier with the in-flight records, replayed once after a failure', async (t) => {
  const spec: JobSpec = {
    jobId: 'unaligned',
    tasks: [{ taskId: 's1' }, { taskId: 's2' }, { taskId: 'm', inputs: ['s1', 's2'] }],
    policy: { mode: 'CHECKPOINT_MODE_UNALIGNED' },
  };
  const h = await harness(t, spec);
  const log1 = new MemoryLog();
  const log2 = new MemoryLog();
  let openGate: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  // s2 is busy with "slow" when the trigger comes: its barrier follows the record it emits then.
  const s2 = logSource(log2, {
    handle: async (message, ctx) => {
      if (message.value === 'slow') await gate;
      ctx.emit(message.value === 'slow' ? 'b-slow' : message.value);
    },
  });
  let thrown = false;
  const seen: string[] = [];
  const m = recorder(seen);
  const failing: Task = {
    process(record, ctx) {
      if (record.text() === 'boom' && !thrown) {
        thrown = true;
        throw new Error('boom (test)');
      }
      return m.process(record, ctx);
    },
  };
  const sources = await h.worker('w-sources', { s1: logSource(log1), s2 });
  const reader = await h.worker('w-reader', { m: failing });
  await h.c.started('unaligned');
  log1.push('a1', 'a2');
  log2.push('b1', 'b2', 'slow');
  await eventually(() => seen.length === 4, { what: 'the first records processed' });

  const mSnapshot = reader.waitFor('snapshot', (e) => e.taskId === 'm');
  const mAcked = reader.waitFor('checkpoint-acked', (e) => e.taskIds.includes('m'));
  const s1Snapshotted = sources.waitFor('snapshot', (e) => e.taskId === 's1');
  const done = h.checkpoint();
  await s1Snapshotted;
  const [snapshot] = await mSnapshot;
  t.deepEqual(
    seenIn(snapshot.bytes),
    ['a1', 'a2', 'b1', 'b2'],
    'm snapshots at the first barrier, without waiting for s2',
  );
  log1.push('a3');
  await eventually(() => seen.includes('a3'), { what: 'records after the barrier processed at once' });
  openGate();
  const first = await done;
  t.is(first.state, 'CHECKPOINT_STATE_COMPLETED');
  const [ack] = await mAcked;
  const entry = ack.snapshots.find((e) => e.taskId === 'm');
  t.true(Number(entry?.metrics?.inFlightBytes ?? 0) > 0, 'the in-flight records are counted');
  const stored = await h.state.get({
    uri: entry?.state?.uri ?? '',
    sizeBytes: Number(entry?.state?.sizeBytes),
    checksum: entry?.state?.checksum ?? '',
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
    inFlightRecords: false,
  });
  const decoded = decodeUnalignedSnapshot(stored);
  t.deepEqual(seenIn(decoded.state), ['a1', 'a2', 'b1', 'b2']);
  t.deepEqual(
    decoded.inFlight.map((r) => [r.from, new TextDecoder().decode(r.value)]),
    [['s2', 'b-slow']],
    "b-slow came from s2 after the snapshot and before s2's barrier",
  );

  // A failure rolls back to checkpoint 1: m's state plus b-slow replayed; s1 replays a3 and boom.
  const restored = reader.waitFor('restored', (e) => e.checkpointId === first.checkpointId);
  log1.push('boom');
  await restored;
  await h.c.started('unaligned');
  await eventually(() => seen.filter((x) => x === 'boom').length === 1, { what: 'the replay' });
  const final = reader.waitFor('snapshot', (e) => e.taskId === 'm');
  const second = await h.checkpoint();
  t.is(second.state, 'CHECKPOINT_STATE_COMPLETED');
  const [last] = await final;
  t.deepEqual(
    seenIn(last.bytes),
    ['a1', 'a2', 'a3', 'b-slow', 'b1', 'b2', 'boom'],
    'every record counted exactly once after the recovery',
  );
});

test('records are processed one at a time and in order, whether process returns a promise or not', async (t) => {
  const spec: JobSpec = { jobId: 'mixed', tasks: [{ taskId: 'src' }, { taskId: 'm', inputs: ['src'] }] };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  const seen: string[] = [];
  let busy = false;
  let overlapped = false;
  const m: Task = {
    process(record, ctx) {
      if (busy) overlapped = true;
      const value = record.text();
      const record_ = (): void => {
        seen.push(value);
        ctx.state.set('seen', [...((ctx.state.get('seen') as string[] | undefined) ?? []), value]);
      };
      // Every third record is asynchronous; the others return nothing.
      if (Number(value.slice(1)) % 3 !== 0) return record_();
      busy = true;
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          record_();
          busy = false;
          resolve();
        }, 2),
      );
    },
  };
  await h.worker('w1', { src: logSource(log) });
  const w2 = await h.worker('w2', { m });
  await h.c.started('mixed');
  const values = Array.from({ length: 60 }, (_, i) => `r${i}`);
  log.push(...values);
  await eventually(() => seen.length === values.length, { what: 'every record processed' });
  t.deepEqual(seen, values);
  t.false(overlapped, 'no record starts before the one before it is done');
  const snapshot = w2.waitFor('snapshot', (e) => e.taskId === 'm');
  t.is((await h.checkpoint()).state, 'CHECKPOINT_STATE_COMPLETED');
  const [taken] = await snapshot;
  t.is(seenIn(taken.bytes).length, values.length);
});

test('an empty keyed state is not stored: its acknowledgement names no state', async (t) => {
  const spec: JobSpec = { jobId: 'empty', tasks: [{ taskId: 'src' }, { taskId: 'm', inputs: ['src'] }] };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  const seen: string[] = [];
  const w = await h.worker('w', { src: logSource(log), m: recorder(seen) });
  const acked = collect(w, 'checkpoint-acked');
  // The results of one checkpoint may come in more than one acknowledgement.
  const uri = (checkpointId: number, taskId: string): string | undefined =>
    acked
      .filter((e) => e.checkpointId === checkpointId)
      .flatMap((e) => e.snapshots)
      .find((s) => s.taskId === taskId)?.state?.uri;
  const first = await h.checkpoint();
  log.push('a1');
  await eventually(() => seen.length === 1, { what: 'the record processed' });
  const second = await h.checkpoint();
  const answered = (): boolean =>
    [uri(first.checkpointId, 'm'), uri(second.checkpointId, 'src'), uri(second.checkpointId, 'm')].every(
      (u) => u !== undefined,
    );
  await eventually(answered, { what: 'the acknowledgements answered' });
  t.is(uri(first.checkpointId, 'm'), '', 'm had no state yet');
  t.is(uri(second.checkpointId, 'src'), '', 'the source keeps no keyed state');
  t.not(uri(second.checkpointId, 'm'), '');
  t.deepEqual(await readdir(join(h.dir, 'empty')), ['m'], 'only m stored a snapshot');
});

test('acknowledgements carry the start delay: to the source taking the trigger, to a reader reaching the barrier', async (t) => {
  const spec: JobSpec = { jobId: 'delay', tasks: [{ taskId: 'src' }, { taskId: 'slow', inputs: ['src'] }] };
  const h = await harness(t, spec);
  const log = new MemoryLog();
  let busy: () => void = () => {};
  const slowStarted = new Promise<void>((resolve) => {
    busy = resolve;
  });
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow: Task = {
    async process(record) {
      if (record.text() !== 'slow') return;
      busy();
      await released;
    },
  };
  const sources = await h.worker('w-src', { src: logSource(log) });
  // A worker without sources: it hears the triggers only for their times.
  const reader = await h.worker('w-slow', { slow });
  await h.c.started('delay');
  const srcAcked = sources.waitFor('checkpoint-acked', (e) => e.taskIds.includes('src'));
  const slowAcked = reader.waitFor('checkpoint-acked', (e) => e.taskIds.includes('slow'));
  log.push('slow');
  await slowStarted;
  // The barrier waits behind the slow record, which goes on once the source took the trigger.
  const srcSnapshotted = sources.waitFor('snapshot', (e) => e.taskId === 'src');
  const done = h.checkpoint();
  await srcSnapshotted;
  const releasedAtMs = Date.now();
  release();
  const summary = await done;
  t.is(summary.state, 'CHECKPOINT_STATE_COMPLETED');
  const delayOf = async (acked: typeof srcAcked, taskId: string): Promise<number> =>
    Number((await acked)[0].snapshots.find((s) => s.taskId === taskId)?.metrics?.startDelayMs ?? -1);
  const srcDelay = await delayOf(srcAcked, 'src');
  const slowDelay = await delayOf(slowAcked, 'slow');
  t.true(srcDelay >= 0 && srcDelay < 2000, `the source took the trigger soon (${srcDelay} ms)`);
  // The reader cannot reach the barrier before the slow record is let go (one clock here).
  const heldAfterTrigger = releasedAtMs - summary.triggeredAtMs;
  t.true(
    slowDelay >= heldAfterTrigger && slowDelay < heldAfterTrigger + 5000,
    `the reader reached the barrier after the slow record (${slowDelay} ms; held ${heldAfterTrigger} ms after the trigger)`,
  );
  t.true(slowDelay > srcDelay);
});

test('a JetStream source with a subject filter resumes right after its position', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const id = randomBytes(4).toString('hex');
  const stream = `RESUME_${id}`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`resume.${id}.*`] });
  t.teardown(async () => {
    await jsm.streams.delete(stream).catch(() => false);
  });
  const js = jetstream(nc);
  // Sequences 1..40: odd ones on .a, even ones on .b.
  for (let i = 1; i <= 40; i += 1) await js.publish(`resume.${id}.${i % 2 === 1 ? 'a' : 'b'}`, `m${i}`);
  const subject = `resume.${id}.a`;
  const source = jetStreamSource({ stream, subject });
  const input = jetStreamInput(stream, subject);
  const read = async (after: number, count: number): Promise<string[]> => {
    const abort = new AbortController();
    const ctx = { nats: nc, signal: abort.signal, logger: silentLogger(), jobId: 'j', taskId: 't' } as TaskContext;
    const got: string[] = [];
    for await (const m of source.read(after === 0 ? [] : [{ input, offset: after }], ctx)) {
      got.push(`${m.offset}:${m.value.string()}`);
      if (got.length === count) break;
    }
    abort.abort();
    return got;
  };
  const expected = (from: number): string[] =>
    Array.from({ length: (41 - from) / 2 }, (_, i) => `${from + 2 * i}:m${from + 2 * i}`);
  t.deepEqual(await read(0, 20), expected(1));
  t.deepEqual(await read(9, 15), expected(11));
  t.deepEqual(await read(38, 1), expected(39));
});

test('publishToStream keeps the order, counts a duplicate as stored, and fails on a refusal', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const id = randomBytes(4).toString('hex');
  const stream = `PUB_${id}`;
  const small = `PUB_SMALL_${id}`;
  const subject = `pub.${id}`;
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [subject], duplicate_window: nanos(60_000) });
  await jsm.streams.add({ name: small, subjects: [`${subject}.small`], max_msg_size: 8 });
  t.teardown(async () => {
    await jsm.streams.delete(stream).catch(() => false);
    await jsm.streams.delete(small).catch(() => false);
  });
  const payloads = Array.from({ length: 1000 }, (_, i) => new TextEncoder().encode(`m${i}`));
  const publication = { subject, payloads, msgId: (i: number) => `id-${i}`, maxInFlight: 64, timeoutMs: 5000 };
  await publishToStream(nc, publication);
  await publishToStream(nc, publication);
  t.is((await jsm.streams.info(stream)).state.messages, 1000, 'the second publication is all duplicates');
  for (const seq of [1, 2, 500, 1000]) t.is((await jsm.streams.getMessage(stream, { seq }))?.string(), `m${seq - 1}`);

  await t.throwsAsync(publishToStream(nc, { ...publication, subject: `nostream.${id}` }), {
    message: /no stream answered/,
  });
  await t.throwsAsync(
    publishToStream(nc, { ...publication, subject: `${subject}.small`, payloads: [new Uint8Array(64)] }),
    { instanceOf: JetStreamApiError },
  );
  const abort = new AbortController();
  abort.abort(new Error('stopped (test)'));
  await t.throwsAsync(publishToStream(nc, { ...publication, signal: abort.signal }), { message: 'stopped (test)' });
});

test('a sink commit that no stream answers is published again until the stream is back, without a recovery', async (t) => {
  const spec: JobSpec = {
    jobId: 'retry',
    tasks: [{ taskId: 'src' }, { taskId: 'out', inputs: ['src'] }],
    policy: { tolerableFailures: -1 },
  };
  const h = await harness(t, spec);
  const outStream = `RETRY_${h.c.prefix.nats}`;
  const outSubject = `${h.c.prefix.nats}.retry`;
  const jsm = await jetstreamManager(h.nc);
  t.teardown(() => jsm.streams.delete(outStream).catch(() => false));
  const log = new MemoryLog();
  await h.worker('w-src', { src: logSource(log) });
  // The stream does not exist yet: publications get "no responders", as while a stream's leader is elected.
  const processed: string[] = [];
  const sink = jetStreamSink({ stream: outStream, subject: outSubject, createStream: false });
  const spy: Task = { ...sink, process: (r, ctx) => (processed.push(r.text()), sink.process(r, ctx)) };
  // The sink logs each publication that no stream answered.
  let unanswered = 0;
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string };
        if (entry.msg === 'sink publication not acknowledged; publishing again') unanswered += 1;
      },
    },
  );
  const w = await h.worker('w-out', { out: spy }, h.state, { logger });
  const failures: string[] = [];
  w.on('failed', (e) => failures.push(e.error.message));
  await h.c.started('retry');
  const epoch = w.epoch;
  log.push('r1', 'r2');
  await eventually(() => processed.length === 2, { what: 'the sink staged two records' });
  const completed = w.waitFor('complete', () => true);
  const done = await h.checkpoint();
  t.is(done.state, 'CHECKPOINT_STATE_COMPLETED');
  await completed;
  await eventually(() => unanswered >= 1, { what: 'a publication of the commit that no stream answered' });
  await jsm.streams.add({ name: outStream, subjects: [outSubject], duplicate_window: nanos(60_000) });
  await eventually(async () => (await jsm.streams.info(outStream)).state.messages === 2, {
    timeoutMs: 15_000,
    what: 'the commit published once the stream exists',
  });
  t.deepEqual(failures, []);
  t.is(w.epoch, epoch, 'no recovery');
});
