/**
 * A worker process of the checkpoint latency benchmark. It runs one SDK
 * worker (`src/sdk`) whose source tasks do nothing but take empty
 * snapshots, and, beside it, the worker's end of the floor: a NATS
 * subscription to the floor's trigger subject and a bare gRPC stream to the
 * floor's server, on which it answers every trigger with one message of the
 * bytes its SDK worker sent to acknowledge a checkpoint.
 *
 * Requests: `start` (a `SdkWorkerStart`) starts the SDK worker; `floor` (a
 * `FloorEnd`) connects the floor end; `prepare` with `checkpointId` waits
 * until the SDK worker's acknowledgements of that checkpoint are accepted
 * and makes their bytes the answer to the next trigger, resolving with an
 * `AckedCheckpoint`; `close` stops both.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import { codec } from '../../src/proto/index.js';
import {
  createLocalDirectoryBackend,
  createWorker,
  type SourceMessage,
  type SourceTask,
  type Worker,
} from '../../src/sdk/index.js';
import { serveParent, type ChildRequest } from './bench-child.js';
import { createEchoClient, type EchoClient, type EchoPing } from './echo-service.js';

/** What `start` runs. */
export interface SdkWorkerStart {
  coordinator: string;
  nats: string[];
  jobId: string;
  workerId: string;
  taskIds: string[];
  /** The directory under which the worker's local directory state backend keeps its snapshots. */
  stateRoot: string;
}

/** Where `floor` connects. */
export interface FloorEnd {
  nats: string[];
  /** The subject the floor publishes its triggers on. */
  subject: string;
  /** The floor's gRPC server. */
  address: string;
}

/** How one worker acknowledged one checkpoint. */
export interface AckedCheckpoint {
  messages: number;
  bytes: number;
  tasks: number;
  /** From the first task's snapshot to the last acknowledgement accepted, in ms. */
  workerMs: number;
}

/** When the first task snapshotted each checkpoint (`performance.now()`). */
const firstSnapshotAt = new Map<number, number>();

/**
 * The state every task snapshots: none. An empty snapshot is not stored,
 * so the checkpoint is the protocol's work alone, as the floor is: no
 * state backend writes that the floor would not pay for.
 */
const NO_STATE = new Uint8Array(0);
/** How long `prepare` waits for a checkpoint's acknowledgements. */
const PREPARE_TIMEOUT_MS = 30_000;

let worker: Worker | undefined;
let stateDir: string | undefined;
/** The session messages that acknowledged each checkpoint: how many, their bytes, the tasks they covered. */
const acked = new Map<number, AckedCheckpoint>();
let floorEnd: { nc: NatsConnection; client: EchoClient; stream: ClientDuplexStream<EchoPing, EchoPing> } | undefined;
/** What the floor end sends at the next trigger. */
let answer: EchoPing = { seq: 0, payload: Buffer.alloc(0) };

const attachRequest = codec<AttachRequest, unknown>('AttachRequest');

/** A source that reads nothing until its epoch ends: all it does is snapshot. */
const idleSource: SourceTask<never> = {
  read: (_positions, ctx) => untilAborted(ctx.signal),
  handle: () => {},
  snapshot: () => NO_STATE,
  restore: () => {},
};

function untilAborted(signal: AbortSignal): AsyncIterable<SourceMessage<never>> {
  const aborted = new Promise<IteratorResult<SourceMessage<never>>>((resolve) => {
    if (signal.aborted) resolve({ done: true, value: undefined });
    else signal.addEventListener('abort', () => resolve({ done: true, value: undefined }), { once: true });
  });
  return { [Symbol.asyncIterator]: () => ({ next: () => aborted }) };
}

async function start(request: SdkWorkerStart): Promise<void> {
  if (worker !== undefined) throw new Error('a worker runs already; close it first');
  stateDir = await mkdtemp(join(request.stateRoot, 'ckpt-bench-state-'));
  const state = await createLocalDirectoryBackend({ dir: stateDir, fsync: false });
  worker = createWorker({
    coordinator: request.coordinator,
    nats: request.nats,
    jobId: request.jobId,
    workerId: request.workerId,
    state,
  });
  for (const taskId of request.taskIds) worker.addTask(taskId, idleSource);
  worker.on('snapshot', ({ checkpointId }) => {
    if (!firstSnapshotAt.has(checkpointId)) firstSnapshotAt.set(checkpointId, performance.now());
  });
  // The bytes of the message the session carried, as `session.request` sends it.
  worker.on('checkpoint-acked', ({ checkpointId, epoch, snapshots }) => {
    const message = { acknowledge: { requestId: checkpointId, epoch, checkpointId, snapshots } };
    const seen = acked.get(checkpointId) ?? { messages: 0, bytes: 0, tasks: 0, workerMs: 0 };
    acked.set(checkpointId, {
      messages: seen.messages + 1,
      bytes: seen.bytes + attachRequest.encode(message).length,
      tasks: seen.tasks + snapshots.length,
      workerMs: performance.now() - (firstSnapshotAt.get(checkpointId) ?? performance.now()),
    });
  });
  await worker.start();
}

async function connectFloor(request: FloorEnd): Promise<void> {
  if (floorEnd !== undefined) throw new Error('the floor end is connected already');
  const nc = await connectNats(request.nats, 'bench-floor-worker');
  const client = createEchoClient(request.address);
  const stream = client.Stream();
  stream.on('error', () => {});
  nc.subscribe(request.subject, { callback: () => void stream.write(answer) });
  await nc.flush();
  floorEnd = { nc, client, stream };
}

/** Waits until every local task's acknowledgement of `checkpointId` was accepted; the next answer carries its bytes. */
async function prepare(checkpointId: number): Promise<AckedCheckpoint> {
  const tasks = worker?.taskIds.length ?? 0;
  const until = Date.now() + PREPARE_TIMEOUT_MS;
  let seen = acked.get(checkpointId);
  while (seen === undefined || seen.tasks < tasks) {
    if (Date.now() > until) throw new Error(`checkpoint ${checkpointId} not acknowledged by every task in time`);
    await worker?.waitFor('checkpoint-acked', (e) => e.checkpointId === checkpointId, {
      timeoutMs: PREPARE_TIMEOUT_MS,
    });
    seen = acked.get(checkpointId);
  }
  for (const id of acked.keys()) if (id < checkpointId) acked.delete(id);
  for (const id of firstSnapshotAt.keys()) if (id <= checkpointId) firstSnapshotAt.delete(id);
  answer = { seq: checkpointId, payload: Buffer.alloc(seen.bytes, 1) };
  return seen;
}

async function close(): Promise<void> {
  const [running, end, dir] = [worker, floorEnd, stateDir];
  [worker, floorEnd, stateDir] = [undefined, undefined, undefined];
  acked.clear();
  firstSnapshotAt.clear();
  await running?.stop();
  if (end !== undefined) {
    end.stream.end();
    end.client.close();
    await end.nc.close();
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

serveParent(
  {
    start: (request: ChildRequest) => start(request as unknown as SdkWorkerStart),
    floor: (request: ChildRequest) => connectFloor(request as unknown as FloorEnd),
    prepare: (request: ChildRequest) => prepare(request.checkpointId as number),
    close,
  },
  close,
);
