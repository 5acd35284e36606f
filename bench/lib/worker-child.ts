/**
 * A worker process of the benchmarks: simulated workers (`test/sim`) of one
 * job, speaking the raw protocol to the coordinator, plus acknowledgements
 * sent on command for the intake measurement.
 *
 * Requests: `start` (a `WorkerStart`) attaches one more worker; `ack` (an
 * `AckCommand`) has every worker send prepared acknowledgements and
 * resolves with an `AckReport`; `close` ends every worker's session.
 */
import { performance } from 'node:perf_hooks';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import { silentLogger } from '../../src/log/index.js';
import { codec } from '../../src/proto/index.js';
import { simulatedSnapshot, startSimulatedWorker, type SimulatedWorker } from '../../test/sim/index.js';
import { serveParent, type ChildRequest } from './bench-child.js';

/** What `start` attaches. */
export interface WorkerStart {
  coordinator: string;
  nats: string[];
  subjectPrefix: string;
  jobId: string;
  spec: JobSpec;
  workerId: string;
  taskIds: string[];
  /** `ack`: the simulated tasks acknowledge every checkpoint; `silent`: they never do (acks come by `ack`). */
  behaviour: 'ack' | 'silent';
}

/** What `ack` sends: every task of every worker acknowledges each checkpoint. */
export interface AckCommand {
  checkpointIds: number[];
  epoch: number;
  /** Task snapshots per AcknowledgeCheckpoint call. */
  batchSize: number;
  /** Calls in flight at most, per worker. */
  window: number;
  /** In the session (SessionAcknowledge messages, as workers send them) or as AcknowledgeCheckpoint calls. */
  via: 'session' | 'call';
}

/** What `ack` measured, with times in ms since the Unix epoch (sub-ms, comparable across processes). */
export interface AckReport {
  acks: number;
  calls: number;
  /** Bytes of the calls as SessionAcknowledge messages (AttachRequest encodings). */
  bytes: number;
  startedAtMs: number;
  finishedAtMs: number;
}

/** The simulated workers of this process, by worker id. */
const workers = new Map<string, { worker: SimulatedWorker; start: WorkerStart }>();

/** Wall-clock ms with sub-ms resolution. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

async function attach(request: WorkerStart): Promise<void> {
  if (workers.has(request.workerId)) throw new Error(`worker ${request.workerId} is attached already`);
  const worker = await startSimulatedWorker({
    coordinator: request.coordinator,
    nats: request.nats,
    subjectPrefix: request.subjectPrefix,
    jobId: request.jobId,
    spec: request.spec,
    workerId: request.workerId,
    taskIds: request.taskIds,
    behaviour: request.behaviour,
    logger: silentLogger(),
  });
  workers.set(request.workerId, { worker, start: request });
}

async function close(): Promise<void> {
  const closing = [...workers.values()];
  workers.clear();
  await Promise.all(closing.map(({ worker }) => worker.close()));
}

/** Every worker of the process sends its calls at once; resolves when all have their replies. */
async function acknowledge(command: AckCommand): Promise<AckReport> {
  if (workers.size === 0) throw new Error('no worker is attached');
  const prepared = [...workers.values()].map(({ worker, start }) => ({ worker, calls: ackCalls(start, command) }));
  const startedAtMs = nowMs();
  await Promise.all(prepared.map(({ worker, calls }) => send(worker, calls, command)));
  const finishedAtMs = nowMs();
  const calls = prepared.flatMap((p) => p.calls);
  const acks = calls.reduce((sum, call) => sum + call.snapshots.length, 0);
  return { acks, calls: calls.length, bytes: messageBytes(calls), startedAtMs, finishedAtMs };
}

const attachRequest = codec<AttachRequest, unknown>('AttachRequest');

/** Bytes of `calls` as the session messages that carry them. */
function messageBytes(calls: ReturnType<typeof ackCalls>): number {
  return calls.reduce((sum, { epoch, checkpointId, snapshots }) => {
    const message = { acknowledge: { requestId: checkpointId, epoch, checkpointId, snapshots } };
    return sum + attachRequest.encode(message).length;
  }, 0);
}

/** One worker's AcknowledgeCheckpoint requests for `command`, in checkpoint order. */
function ackCalls(start: WorkerStart, command: AckCommand) {
  const base = { jobId: start.jobId, workerId: start.workerId, epoch: command.epoch };
  return command.checkpointIds.flatMap((checkpointId) =>
    batches(snapshots(start, checkpointId), command.batchSize).map((batch) => ({
      ...base,
      checkpointId,
      snapshots: batch,
    })),
  );
}

/** Sends `calls` in order with at most `command.window` in flight, in the session or as calls. */
async function send(worker: SimulatedWorker, calls: ReturnType<typeof ackCalls>, command: AckCommand): Promise<void> {
  let next = 0;
  const one = (call: ReturnType<typeof ackCalls>[number]) =>
    command.via === 'session'
      ? worker.acknowledge(call, ACK_DEADLINE_MS)
      : worker.client.acknowledgeCheckpoint(
          { ...call, sessionToken: worker.welcome?.sessionToken ?? '' },
          { deadlineMs: ACK_DEADLINE_MS },
        );
  const lane = async (): Promise<void> => {
    while (next < calls.length) await one(calls[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(command.window, calls.length) }, lane));
}

/** Deadline of one acknowledgement sent on command. */
const ACK_DEADLINE_MS = 60_000;

function snapshots(request: WorkerStart, checkpointId: number): TaskSnapshot__Output[] {
  return request.taskIds.map((taskId) =>
    simulatedSnapshot({ jobId: request.jobId, taskId, checkpointId, stateBytes: 1024, source: true, alignmentMs: 0 }),
  );
}

function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

serveParent(
  {
    start: (request: ChildRequest) => attach(request as unknown as WorkerStart),
    ack: (request: ChildRequest) => acknowledge(request as unknown as AckCommand),
    close,
  },
  close,
);
