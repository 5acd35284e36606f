/**
 * A worker process of the scale scenario: simulated workers (`test/sim`,
 * on the worker protocol layer the SDK runs on) of one big job or of many
 * small jobs, and beside them the workers' end of the floor: a NATS
 * subscription per job to the floor's trigger subject and one bare gRPC
 * stream per job to the floor's server, on which it answers each trigger
 * with as many messages of as many bytes as the simulated worker sent to
 * acknowledge a checkpoint of that job.
 *
 * Requests: `attach` (a `ScaleAttach`) attaches simulated workers;
 * `prepare` (`jobId`, `checkpointId`) waits until that worker's
 * acknowledgements of the checkpoint are accepted and makes their sizes
 * the answer to the next floor trigger, resolving with an `AckSizes`;
 * `floor` (a `ScaleFloorEnd`) connects the floor ends of the attached
 * jobs; `latencies` returns (and forgets) trigger-to-complete times as the
 * workers saw them; `close` ends everything.
 */
import { performance } from 'node:perf_hooks';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, controlMessageCodecs } from '../../src/bus/index.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { codec } from '../../src/proto/index.js';
import { createCoordinatorClient } from '../../src/client/index.js';
import { SimulatedWorker, startSimulatedWorker, type SimulatedWorkerOptions } from '../../test/sim/index.js';
import { resolveSimOptions } from '../../test/sim/options.js';
import { serveParent, type ChildRequest } from './bench-child.js';
import { createEchoClient, type EchoClient, type EchoPing } from './echo-service.js';
import { FLOOR_JOBS, LONG_DEADLINE_MS } from './scale-plan.js';

/** One simulated worker to attach. */
export interface ScaleWorkerStart {
  spec: JobSpec;
  workerId: string;
  taskIds: string[];
}

/** What `attach` attaches, all at `coordinator`. */
export interface ScaleAttach {
  coordinator: string;
  nats: string[];
  subjectPrefix: string;
  workers: ScaleWorkerStart[];
  /** Record trigger-to-complete times (the many-jobs load). */
  timeCheckpoints: boolean;
}

/** Where the floor ends connect, and the subjects they use. */
export interface ScaleFloorEnd {
  nats: string[];
  address: string;
  /** Triggers of job `i` arrive on `<subject>.t.<i>`, its completes on `<subject>.c.<i>`. */
  subject: string;
  /** The floor's index of each attached job, by job id. */
  indexOf: Record<string, number>;
  /** Each floor message of a job carries this many bytes, unless `prepare` set that job's sizes. */
  messageBytes: number[];
  /** Record trigger-to-complete times of the floor's rounds. */
  timeRounds: boolean;
}

/** The session messages with which one worker acknowledged one checkpoint. */
export interface AckSizes {
  /** Bytes of each message, as `AttachRequest` encodings. */
  messageBytes: number[];
  tasks: number;
  /** From the trigger's arrival to the last acknowledgement accepted, in ms. */
  workerMs: number;
  /** From the trigger's arrival to the first acknowledgement accepted, in ms. */
  firstAckMs: number;
}

/** Latencies recorded since the last `latencies` request, in ms. */
export interface ScaleLatencies {
  checkpoints: number[];
  floorRounds: number[];
}

/** The simulated workers' HTTP/2 keepalive: a ping every second, as the client's default; 30 s for its answer. */
const SIM_KEEPALIVE = { timeMs: 1000, timeoutMs: 30_000 };

/** How long `prepare` waits. */
const PREPARE_TIMEOUT_MS = 60_000;

const attachRequest = codec<AttachRequest, unknown>('AttachRequest');

interface Attached {
  worker: SimulatedWorker;
  tasks: number;
  /** Tasks acknowledged per `acked` event, by checkpoint id, in order. */
  messages: Map<number, number[]>;
  /** When each checkpoint's trigger arrived. */
  triggeredAt: Map<number, number>;
  /** When each acknowledgement message of a checkpoint was accepted (the big job). */
  ackTimes: Map<number, number[]>;
}

const attached = new Map<string, Attached>();
const latencies: ScaleLatencies = { checkpoints: [], floorRounds: [] };
let floorEnd: FloorEnd | undefined;

async function attach(request: ScaleAttach): Promise<void> {
  await Promise.all(request.workers.map((start) => attachOne(request, start)));
}

/** A warm spare's worker, made ready to open its session (`stage`), by job. */
const staged = new Map<string, { request: ScaleAttach; start: ScaleWorkerStart; worker: SimulatedWorker }>();

/**
 * Makes a warm spare: its worker knows its job and tasks, has its NATS
 * connection and its client, and opens its session (subscriptions, hello,
 * welcome) only on `attachStaged`, as a spare process that waits to take
 * over. What a start spends before its hello (the spec of 100,000 tasks
 * sent to the process and read, the tasks' wiring from it) is then not in
 * a recovery's time.
 */
async function stage(request: ScaleAttach): Promise<void> {
  for (const start of request.workers) {
    const jobId = start.spec.jobId ?? '';
    if (attached.has(jobId) || staged.has(jobId)) throw new Error(`a worker of job ${jobId} is attached already`);
    const config = resolveSimOptions(workerOptions(request, start));
    const nc = await connectNats(config.nats, `ckpt-sim-${config.workerId}`, { logger: config.logger });
    const client = createCoordinatorClient(config.coordinator, { keepalive: SIM_KEEPALIVE });
    staged.set(jobId, { request, start, worker: new SimulatedWorker(config, nc, client) });
  }
}

/** Opens the sessions of the staged workers (`stage`). */
async function attachStaged(): Promise<void> {
  const all = [...staged.values()];
  staged.clear();
  await Promise.all(
    all.map(async ({ request, start, worker }) => {
      try {
        await worker.start();
      } catch (err) {
        worker.kill();
        throw err;
      }
      track(request, start, worker);
    }),
  );
}

function workerOptions(request: ScaleAttach, start: ScaleWorkerStart): SimulatedWorkerOptions {
  return {
    coordinator: request.coordinator,
    nats: request.nats,
    subjectPrefix: request.subjectPrefix,
    jobId: start.spec.jobId ?? '',
    spec: start.spec,
    workerId: start.workerId,
    taskIds: start.taskIds,
    behaviour: 'ack',
    // A welcome carries the job's whole spec, and a job of 100,000 tasks takes its workers' hellos in turn.
    attachTimeoutMs: LONG_DEADLINE_MS,
    ackDeadlineMs: LONG_DEADLINE_MS,
    // Sixteen worker processes decoding a welcome of 100,000 tasks, or encoding their acknowledgements, on two
    // cores stall their own event loops past the default 4 s keepalive timeout, which then ends their sessions.
    // The coordinator here never goes silent (no fail-over is measured), and a killed worker's session ends with
    // its connection, which the keepalive does not judge.
    keepalive: SIM_KEEPALIVE,
    logger: silentLogger(),
  };
}

async function attachOne(request: ScaleAttach, start: ScaleWorkerStart): Promise<void> {
  const jobId = start.spec.jobId ?? '';
  if (attached.has(jobId)) throw new Error(`a worker of job ${jobId} is attached already`);
  track(request, start, await startSimulatedWorker(workerOptions(request, start)));
}

/** Records what an attached worker acknowledges and when. */
function track(request: ScaleAttach, start: ScaleWorkerStart, worker: SimulatedWorker): void {
  const jobId = start.spec.jobId ?? '';
  const entry: Attached = {
    worker,
    tasks: start.taskIds.length,
    messages: new Map(),
    triggeredAt: new Map(),
    ackTimes: new Map(),
  };
  attached.set(jobId, entry);
  worker.events.on('acked', ({ checkpointId, taskIds }) => {
    const counts = entry.messages.get(checkpointId) ?? [];
    counts.push(taskIds.length);
    entry.messages.set(checkpointId, counts);
    if (!request.timeCheckpoints) {
      const at = entry.ackTimes.get(checkpointId) ?? [];
      at.push(performance.now());
      entry.ackTimes.set(checkpointId, at);
      return;
    }
    // Only what `prepare` reads is kept: the many-jobs load never prepares.
    entry.messages.delete(checkpointId);
    worker.acked.delete(checkpointId);
  });
  worker.events.on('trigger', (trigger) => entry.triggeredAt.set(trigger.checkpointId, performance.now()));
  if (!request.timeCheckpoints) return;
  worker.events.on('complete', ({ checkpointId }) => {
    const at = entry.triggeredAt.get(checkpointId);
    entry.triggeredAt.delete(checkpointId);
    worker.completed.delete(checkpointId);
    if (at !== undefined) latencies.checkpoints.push(performance.now() - at);
  });
}

/** Waits until `jobId`'s worker has had every task's acknowledgement of `checkpointId` accepted. */
async function prepare(jobId: string, checkpointId: number): Promise<AckSizes> {
  const entry = attached.get(jobId);
  if (entry === undefined) throw new Error(`no worker of job ${jobId} is attached`);
  const { worker, tasks } = entry;
  const accepted = (): number => worker.acked.get(checkpointId)?.length ?? 0;
  if (accepted() < tasks) {
    await worker.waitFor('acked', () => accepted() >= tasks, { timeoutMs: PREPARE_TIMEOUT_MS });
  }
  const snapshots = worker.acked.get(checkpointId) ?? [];
  const counts = entry.messages.get(checkpointId) ?? [];
  const messageBytes: number[] = [];
  let offset = 0;
  for (const count of counts) {
    const slice = snapshots.slice(offset, offset + count);
    offset += count;
    const message = { acknowledge: { requestId: checkpointId, epoch: worker.epoch, checkpointId, snapshots: slice } };
    messageBytes.push(attachRequest.encode(message).length);
  }
  for (const id of [...worker.acked.keys()]) if (id <= checkpointId) worker.acked.delete(id);
  for (const id of [...entry.messages.keys()]) if (id <= checkpointId) entry.messages.delete(id);
  for (const id of [...worker.completed.keys()]) if (id <= checkpointId) worker.completed.delete(id);
  const triggeredAt = entry.triggeredAt.get(checkpointId) ?? 0;
  const ackTimes = entry.ackTimes.get(checkpointId) ?? [triggeredAt];
  for (const map of [entry.triggeredAt, entry.ackTimes])
    for (const id of [...map.keys()]) if (id <= checkpointId) map.delete(id);
  floorEnd?.setSizes(jobId, messageBytes);
  return {
    messageBytes,
    tasks: snapshots.length,
    workerMs: Math.max(...ackTimes) - triggeredAt,
    firstAckMs: Math.min(...ackTimes) - triggeredAt,
  };
}

/** The workers' end of the floor: per job a trigger subscription and a bare stream. */
class FloorEnd {
  readonly #nc: NatsConnection;
  readonly #client: EchoClient;
  readonly #streams = new Map<string, ClientDuplexStream<EchoPing, EchoPing>>();
  readonly #payloads = new Map<string, Buffer[]>();

  private constructor(nc: NatsConnection, client: EchoClient) {
    this.#nc = nc;
    this.#client = client;
  }

  static async connect(request: ScaleFloorEnd): Promise<FloorEnd> {
    const nc = await connectNats(request.nats, 'bench-scale-floor-worker');
    const end = new FloorEnd(nc, createEchoClient(request.address));
    for (const [jobId, index] of Object.entries(request.indexOf)) end.#open(request, jobId, index);
    await nc.flush();
    return end;
  }

  setSizes(jobId: string, messageBytes: readonly number[]): void {
    if (this.#payloads.has(jobId))
      this.#payloads.set(
        jobId,
        messageBytes.map((bytes) => Buffer.alloc(bytes, 1)),
      );
  }

  async close(): Promise<void> {
    for (const stream of this.#streams.values()) stream.end();
    this.#client.close();
    await this.#nc.close();
  }

  #open(request: ScaleFloorEnd, jobId: string, index: number): void {
    const stream = this.#client.Stream();
    stream.on('error', () => {});
    this.#streams.set(jobId, stream);
    this.#payloads.set(
      jobId,
      request.messageBytes.map((bytes) => Buffer.alloc(bytes, 1)),
    );
    const startedAt = new Map<number, number>();
    const codecs = controlMessageCodecs();
    // A round's trigger and complete are encoded as ckpt's; the answers name the job and round.
    this.#nc.subscribe(`${request.subject}.t.${index}`, {
      callback: (_err, msg) => {
        const round = codecs.trigger.decode(msg.data).checkpointId;
        if (request.timeRounds) startedAt.set(round, performance.now());
        for (const payload of this.#payloads.get(jobId) ?? [])
          stream.write({ seq: round * FLOOR_JOBS + index, payload });
      },
    });
    if (!request.timeRounds) return;
    this.#nc.subscribe(`${request.subject}.c.${index}`, {
      callback: (_err, msg) => {
        const round = codecs.complete.decode(msg.data).checkpointId;
        const at = startedAt.get(round);
        startedAt.delete(round);
        if (at !== undefined) latencies.floorRounds.push(performance.now() - at);
      },
    });
  }
}

async function connectFloor(request: ScaleFloorEnd): Promise<void> {
  if (floorEnd !== undefined) throw new Error('the floor end is connected already');
  floorEnd = await FloorEnd.connect(request);
}

function takeLatencies(): ScaleLatencies {
  const taken = { checkpoints: latencies.checkpoints.splice(0), floorRounds: latencies.floorRounds.splice(0) };
  return taken;
}

async function close(): Promise<void> {
  const workers = [...attached.values()];
  attached.clear();
  for (const { worker } of staged.values()) worker.kill();
  staged.clear();
  const end = floorEnd;
  floorEnd = undefined;
  takeLatencies();
  await Promise.all(workers.map(({ worker }) => worker.close()));
  await end?.close();
}

serveParent(
  {
    attach: (request: ChildRequest) => attach(request as unknown as ScaleAttach),
    stage: (request: ChildRequest) => stage(request as unknown as ScaleAttach),
    attachStaged: () => attachStaged(),
    prepare: (request: ChildRequest) => prepare(request.jobId as string, request.checkpointId as number),
    floor: (request: ChildRequest) => connectFloor(request as unknown as ScaleFloorEnd),
    latencies: () => Promise.resolve(takeLatencies()),
    close,
  },
  close,
);
