/**
 * A worker process of the groups scenario: simulated workers (`test/sim`,
 * on the worker protocol layer the SDK runs on) of many small jobs, as in
 * `scale-worker-child.ts`, but attaching again when a session ends
 * (`reattach`): given every coordinator address, a worker whose group
 * changes leader (a lease lost on a busy machine, a resignation of the
 * balance) follows the new leader, with the NOT_LEADER redirects of
 * PROTOCOL.md §13.1, instead of leaving its job without a worker.
 *
 * Requests: `attach` (a `ScaleAttach`) attaches simulated workers;
 * `latencies` returns (and forgets) trigger-to-complete times as the
 * workers saw them, with the sessions that ended since and this process's
 * CPU time; `close` ends everything.
 */
import { performance } from 'node:perf_hooks';
import { silentLogger } from '../../src/log/index.js';
import { startSimulatedWorker, type SimulatedWorker } from '../../test/sim/index.js';
import { serveParent, type ChildRequest } from './bench-child.js';
import type { ScaleAttach, ScaleWorkerStart } from './scale-worker-child.js';

/** What `latencies` returns. */
export interface GroupsLatencies {
  /** Trigger to complete of every checkpoint completed since the last `latencies`, ms. */
  checkpoints: number[];
  /** Sessions that ended (and were opened again) since the last `latencies`. */
  sessionsEnded: number;
  /** This process's CPU time so far (user and system), ms. */
  cpuMs: number;
}

/** How long a worker tries to attach, also again after its session ended. */
const ATTACH_TIMEOUT_MS = 60_000;

const workers = new Map<string, SimulatedWorker>();
let checkpoints: number[] = [];
let sessionsEnded = 0;

async function attach(request: ScaleAttach): Promise<void> {
  await Promise.all(request.workers.map((start) => attachOne(request, start)));
}

async function attachOne(request: ScaleAttach, start: ScaleWorkerStart): Promise<void> {
  const jobId = start.spec.jobId ?? '';
  if (workers.has(jobId)) throw new Error(`a worker of job ${jobId} is attached already`);
  const worker = await startSimulatedWorker({
    coordinator: request.coordinator,
    nats: request.nats,
    subjectPrefix: request.subjectPrefix,
    jobId,
    spec: start.spec,
    workerId: start.workerId,
    taskIds: start.taskIds,
    behaviour: 'ack',
    reattach: true,
    attachTimeoutMs: ATTACH_TIMEOUT_MS,
    logger: silentLogger(),
  });
  workers.set(jobId, worker);
  const triggeredAt = new Map<number, number>();
  worker.events.on('trigger', (trigger) => triggeredAt.set(trigger.checkpointId, performance.now()));
  // Only the times are kept: what the simulated worker records of each checkpoint is dropped as it goes.
  worker.events.on('acked', ({ checkpointId }) => worker.acked.delete(checkpointId));
  worker.events.on('complete', ({ checkpointId }) => {
    const at = triggeredAt.get(checkpointId);
    worker.completed.delete(checkpointId);
    for (const id of triggeredAt.keys()) if (id <= checkpointId) triggeredAt.delete(id);
    if (at !== undefined) checkpoints.push(performance.now() - at);
  });
  worker.events.on('session-ended', () => sessionsEnded++);
}

function takeLatencies(): GroupsLatencies {
  const usage = process.cpuUsage();
  const taken = { checkpoints, sessionsEnded, cpuMs: (usage.user + usage.system) / 1000 };
  checkpoints = [];
  sessionsEnded = 0;
  return taken;
}

async function close(): Promise<void> {
  const all = [...workers.values()];
  workers.clear();
  await Promise.all(all.map((worker) => worker.close()));
  takeLatencies();
}

serveParent(
  {
    attach: (request: ChildRequest) => attach(request as unknown as ScaleAttach),
    latencies: () => Promise.resolve(takeLatencies()),
    close,
  },
  close,
);
