/**
 * The coordinator's end of the scale scenario's floor, in a process of its
 * own as the coordinator is: what the same checkpoints cost on the same
 * systems with nothing of ckpt's logic. A round publishes one NATS message
 * (a Trigger, encoded as ckpt encodes one) to a job's worker processes,
 * waits for their answers on bare gRPC streams (as many messages of as many
 * bytes as their simulated workers sent to acknowledge the checkpoint),
 * then writes the commit the coordinator wrote for it, read back from etcd
 * (`commit-capture.ts`; `scale-commits.ts` writes its parts, then one
 * guarded transaction), and publishes a CheckpointComplete.
 *
 * Requests: `start` (`ScaleFloorStart`) resolves with the gRPC address;
 * `watch` (`prefix`) starts capturing the coordinator's commits under it;
 * `round` (`ScaleRound`) runs one timed round of one job's captured
 * checkpoint; `sample` (`jobId`) keeps the next commit of that job, for
 * `load`; `load` (`ScaleLoad`) runs rounds of many jobs at a fixed interval
 * each, with that commit's keys and values, for a while.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Etcd3 } from 'etcd3';
import { connectNats, controlMessageCodecs } from '../../src/bus/index.js';
import { serveParent, type ChildRequest } from './bench-child.js';
import { loadEchoService, type EchoPing } from './echo-service.js';
import { captureClient, CommitCapture, type CapturedCommit } from './commit-capture.js';
import { ScaleCommitReplay } from './scale-commits.js';
import { FLOOR_JOBS } from './scale-plan.js';

/** What `start` connects to. */
export interface ScaleFloorStart {
  nats: string[];
  etcd: string[];
  /** The floor's own etcd prefix, `/<p>/`. */
  floorPrefix: string;
  /** Subjects of the floor's triggers and completes (`<subject>.t.<i>`, `<subject>.c.<i>`). */
  subject: string;
}

/** One timed round. */
export interface ScaleRound {
  /** The coordinator's job whose commit is replayed, and its checkpoint. */
  jobId: string;
  checkpointId: number;
  epoch: number;
  /** The floor's index of the job (its worker ends' subjects). */
  index: number;
  /** Answers to wait for: every message of every worker process. */
  messages: number;
  /** The coordinator's job directory (`/<p>/jobs/<job>/`) and the floor's, of the same length. */
  from: string;
  to: string;
}

/** One round's times, in ms. */
export interface ScaleRoundTimes {
  /** Publish to etcd's answer to the transaction. */
  ms: number;
  /** Publish to the last answer. */
  fanOutMs: number;
  /** The parts' puts. */
  partsMs: number;
  /** The parts and the transaction. */
  etcdMs: number;
}

/** The sizes of a replayed commit: its parts, and the keys and values of its transaction's puts. */
export interface CommitSizes {
  parts: number;
  partBytes: number;
  putBytes: number;
}

/** What `load` runs. */
export interface ScaleLoad {
  /** Job directories the sample commit is replayed into, `/<p>/jobs/<job>/`, one per job, by index. */
  dirs: string[];
  /** The sample commit's job directory. */
  from: string;
  intervalMs: number;
  durationMs: number;
  /** Answers per round of each job. */
  messages: number;
}

/** What `load` did. */
export interface ScaleLoadOutcome {
  rounds: number;
  /** Rounds not started because the job's previous one was still running. */
  skipped: number;
  /** Rounds that failed. */
  failed: number;
  /** Why rounds failed: each distinct message (at most `MAX_FAILURE_KINDS`) and how often. */
  failures: Record<string, number>;
}

/** How many distinct failure messages `load` keeps. */
const MAX_FAILURE_KINDS = 5;

const ARRIVAL_TIMEOUT_MS = 60_000;
/** How long a commit of a job of 100,000 tasks may take to be seen. */
const CAPTURE_TIMEOUT_MS = 60_000;
const ETCD_DEADLINE_MS = 5000;

let nc: NatsConnection | undefined;
let server: grpc.Server | undefined;
let etcd: Etcd3 | undefined;
let replay: ScaleCommitReplay | undefined;
let capture: CommitCapture | undefined;
let subject = '';
let sample: CapturedCommit | undefined;
const prepared = new Set<string>();
/** Answers still awaited, by `seq`. */
const expected = new Map<number, { count: number; done: () => void }>();
const codecs = controlMessageCodecs();

async function start(request: ScaleFloorStart): Promise<string> {
  nc = await connectNats(request.nats, 'bench-scale-floor');
  subject = request.subject;
  // No deadline on the capture's watch stream, and no limit on a watch response: see `captureClient`.
  etcd = captureClient(request.etcd, ETCD_DEADLINE_MS);
  replay = await ScaleCommitReplay.start(etcd, request.floorPrefix);
  server = new grpc.Server();
  server.addService(loadEchoService().service, {
    Stream: (call: grpc.ServerDuplexStream<EchoPing, EchoPing>) => {
      call.on('data', (ping: EchoPing) => arrived(ping.seq));
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const s = server;
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    ),
  );
  return `127.0.0.1:${port}`;
}

function arrived(seq: number): void {
  const e = expected.get(seq);
  if (e === undefined) return;
  e.count -= 1;
  if (e.count === 0) {
    expected.delete(seq);
    e.done();
  }
}

function expect(seq: number, count: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      expected.delete(seq);
      reject(new Error(`floor round ${seq}: not every answer came within ${ARRIVAL_TIMEOUT_MS} ms`));
    }, ARRIVAL_TIMEOUT_MS);
    expected.set(seq, {
      count,
      done: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

function connected(): { nc: NatsConnection; replay: ScaleCommitReplay; etcd: Etcd3 } {
  if (nc === undefined || replay === undefined || etcd === undefined) throw new Error('the floor was not started');
  return { nc, replay, etcd };
}

async function watch(prefix: string): Promise<void> {
  if (capture !== undefined) await capture.close();
  capture = await CommitCapture.start(connected().etcd, prefix, CAPTURE_TIMEOUT_MS);
}

/** Publish, answers, commit, complete: one round of job `index` for checkpoint `round`. */
async function oneRound(
  index: number,
  round: number,
  epoch: number,
  messages: number,
  commit: CapturedCommit,
  target: { from: string; to: string },
): Promise<ScaleRoundTimes> {
  const c = connected();
  const answered = expect(round * FLOOR_JOBS + index, messages);
  const now = Date.now();
  const trigger = codecs.trigger.encode({
    jobId: commit.jobId,
    checkpointId: round,
    epoch,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    term: 1,
    triggeredAtMs: now,
    deadlineMs: now + 60_000,
  });
  const started = performance.now();
  c.nc.publish(`${subject}.t.${index}`, trigger);
  await answered;
  const fannedOut = performance.now();
  const partsMs = await c.replay.replay(commit, target, round, epoch);
  const ended = performance.now();
  const complete = { jobId: commit.jobId, checkpointId: round, epoch, completedAtMs: Date.now(), term: 1 };
  c.nc.publish(`${subject}.c.${index}`, codecs.complete.encode(complete));
  return { ms: ended - started, fanOutMs: fannedOut - started, partsMs, etcdMs: ended - fannedOut };
}

async function timedRound(request: ScaleRound): Promise<ScaleRoundTimes & { commit: CommitSizes }> {
  if (capture === undefined) throw new Error('watch was not requested');
  const commit = await capture.commitOf(request.jobId, request.checkpointId);
  const c = connected();
  if (!prepared.has(request.to)) {
    await c.replay.prepare(request.to, request.epoch);
    prepared.add(request.to);
  }
  const target = { from: request.from, to: request.to };
  const times = await oneRound(request.index, request.checkpointId, request.epoch, request.messages, commit, target);
  await c.replay.sweep(request.to);
  return { ...times, commit: { parts: commit.parts.length, partBytes: commit.partBytes, putBytes: commit.putBytes } };
}

async function takeSample(jobId: string): Promise<CommitSizes> {
  if (capture === undefined) throw new Error('watch was not requested');
  sample = await capture.nextCommit(jobId);
  await capture.close();
  capture = undefined;
  return { parts: sample.parts.length, partBytes: sample.partBytes, putBytes: sample.putBytes };
}

/** Every job runs a round every `intervalMs` (skipping while its previous one runs), for `durationMs`. */
async function load(request: ScaleLoad): Promise<ScaleLoadOutcome> {
  const commit = sample;
  if (commit === undefined) throw new Error('sample was not requested');
  const c = connected();
  await mapLimit(request.dirs, 16, (dir) => c.replay.prepare(dir, 1));
  const outcome: ScaleLoadOutcome = { rounds: 0, skipped: 0, failed: 0, failures: {} };
  const failedWith = (err: unknown): void => {
    outcome.failed += 1;
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 200);
    const kinds = outcome.failures;
    if (message in kinds) kinds[message] = (kinds[message] ?? 0) + 1;
    else if (Object.keys(kinds).length < MAX_FAILURE_KINDS) kinds[message] = 1;
  };
  const timers: NodeJS.Timeout[] = [];
  let inFlight = 0;
  let drained: () => void = () => {};
  request.dirs.forEach((dir, index) => {
    let round = 0;
    let busy = false;
    const tick = (): void => {
      if (busy) {
        outcome.skipped += 1;
        return;
      }
      busy = true;
      round += 1;
      const done = oneRound(index, round, 1, request.messages, commit, { from: request.from, to: dir }).then(
        () => void (outcome.rounds += 1),
        failedWith,
      );
      inFlight += 1;
      void done.finally(() => {
        busy = false;
        inFlight -= 1;
        if (inFlight === 0) drained();
      });
    };
    const first = setTimeout(
      () => {
        tick();
        timers.push(setInterval(tick, request.intervalMs));
      },
      Math.floor(Math.random() * request.intervalMs),
    );
    timers.push(first);
  });
  await new Promise((resolve) => setTimeout(resolve, request.durationMs));
  for (const timer of timers) clearTimeout(timer);
  if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
  return outcome;
}

async function mapLimit<T>(items: readonly T[], limit: number, op: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await op(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

async function close(): Promise<void> {
  await capture?.close();
  server?.forceShutdown();
  await nc?.close();
  etcd?.close();
  [capture, server, nc, etcd] = [undefined, undefined, undefined, undefined];
}

serveParent(
  {
    start: (request: ChildRequest) => start(request as unknown as ScaleFloorStart),
    watch: (request: ChildRequest) => watch(request.prefix as string),
    round: (request: ChildRequest) => timedRound(request as unknown as ScaleRound),
    sample: (request: ChildRequest) => takeSample(request.jobId as string),
    load: (request: ChildRequest) => load(request as unknown as ScaleLoad),
    close,
  },
  close,
);
