/**
 * How a worker runtime's parts are built from what it is given: a task's
 * runner (its options from the worker's config and the welcome's policy),
 * the subscriptions of control messages, records and credits, and the
 * sender of the batched acknowledgements.
 */
import { pieceCodecOf } from './state/compression.js';
import type { EventEmitter } from 'node:events';
import type { NatsConnection } from '@nats-io/nats-core';
import { jobSubjects, type ControlIntake } from '../bus/index.js';
import { createAckSender, subscribeControl, type WorkerSession } from '../worker-protocol/index.js';
import type { CoordinatorClient } from '../client/index.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import type { Logger } from '../log/index.js';
import type { AlignmentMode } from './alignment.js';
import type { DataPlane } from './data-plane.js';
import type { EdgeIntake } from './edge-intake.js';
import type { WorkerEventMap } from './events.js';
import type { JobGraph } from './graph.js';
import type { WorkerConfig } from './options.js';
import type { RunnerOptions } from './runner-options.js';
import { TaskRunner } from './task-runner.js';
import type { AnyTask } from './task.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** What a runtime is built from. */
export interface RuntimeDeps {
  config: WorkerConfig;
  welcome: Welcome__Output;
  tasks: ReadonlyMap<string, AnyTask>;
  nc: NatsConnection;
  client: CoordinatorClient;
  events: EventEmitter<WorkerEventMap>;
  /** Sends a message on the session (queued while it reconnects). */
  send(request: AttachRequest): void;
  /** The session, for acknowledgements sent in it and the token of calls. */
  session: Pick<WorkerSession, 'connected' | 'request' | 'sessionToken'>;
  /** The worker's metrics, when it has them: the tasks count their records there. */
  metrics: Pick<WorkerMetrics, 'counts'> | undefined;
  /** Aborted when the worker stops. */
  signal: AbortSignal;
  logger: Logger;
}

/** What a task's runner tells its runtime, and asks it. */
export type RunnerHooks = Pick<RunnerOptions, 'triggeredAtMs' | 'onResult' | 'onFailure'>;

/** The runner of `taskId` in `graph`, on `plane`. */
export function newTaskRunner(
  deps: RuntimeDeps,
  graph: JobGraph,
  task: { taskId: string; task: AnyTask; plane: DataPlane; mode: AlignmentMode },
  hooks: RunnerHooks,
): TaskRunner {
  const { config } = deps;
  const { taskId } = task;
  return new TaskRunner({
    jobId: config.jobId,
    taskId,
    task: task.task,
    inputs: graph.inputsOf(taskId),
    outputs: graph.outputsOf(taskId),
    mode: task.mode,
    alignedCheckpointTimeoutMs: alignedTimeoutOf(deps.welcome.spec?.policy?.alignedCheckpointTimeoutMs),
    plane: task.plane,
    backend: config.state,
    keyGroups: graph.keyGroupsOf(taskId),
    codec: pieceCodecOf(deps.welcome.spec?.policy?.compression, 'policy.compression', { jobId: config.jobId }),
    nats: deps.nc,
    logger: deps.logger.child({ taskId }),
    maxQueuedSourceMessages: config.maxQueuedSourceMessages,
    flowControlWindow: config.flowControlWindow,
    abandonCallAfterMs: config.abandonCallAfterMs,
    triggeredAtMs: hooks.triggeredAtMs,
    counts: deps.metrics?.counts(taskId),
    onResult: hooks.onResult,
    onSnapshot: (event) => deps.events.emit('snapshot', event),
    onFailure: hooks.onFailure,
  });
}

/** What the runtime's subscriptions deliver to. */
export interface RuntimeIntakes {
  /** The tasks the worker runs. */
  taskIds: Iterable<string>;
  control: ControlIntake;
  edges: EdgeIntake;
}

/**
 * Subscribes the control messages, the records of the tasks' inputs and
 * the credits of their outputs; returns how to unsubscribe each. Throws
 * when one failed, after those that worked were added to `unsubscribe`.
 */
export async function subscribeRuntime(
  deps: Pick<RuntimeDeps, 'nc' | 'welcome' | 'logger'>,
  graph: JobGraph,
  plane: DataPlane,
  intakes: RuntimeIntakes,
  unsubscribe: (() => void)[],
): Promise<void> {
  const taskIds = [...intakes.taskIds];
  const readers = new Map<string, readonly string[]>();
  for (const taskId of taskIds) {
    const inputs = graph.inputsOf(taskId);
    if (inputs.length > 0) readers.set(taskId, inputs);
  }
  const subjects = jobSubjects(deps.welcome.controlSubjectPrefix);
  const onError = (err: unknown, subject: string): void => deps.logger.warn({ err, subject }, 'subscription failed');
  const producers = new Map<string, readonly string[]>();
  for (const taskId of taskIds) producers.set(taskId, graph.outputsOf(taskId));
  // Side by side: each subscribes at once and then waits for the server's answer to its flush, so that the three
  // cost one round trip instead of three (a restarted worker handles its restore only after them).
  const subscribed = await Promise.allSettled([
    // Triggers also without sources: their times are what tasks reading barriers measure their start delay from.
    subscribeControl(deps.nc, subjects, intakes.control, true, onError),
    plane.subscribe(readers, (edge, msg) => intakes.edges.receive(edge, msg)),
    plane.subscribeCredits(producers),
  ]);
  for (const s of subscribed) if (s.status === 'fulfilled') unsubscribe.push(s.value);
  const failed = subscribed.find((s) => s.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

/**
 * The sender of the runtime's acknowledgement batches: results of an epoch
 * that is not `isCurrent` any more are dropped; `intake` hears what is sent
 * and answered.
 */
export function runtimeAckSender(
  deps: RuntimeDeps,
  intake: ControlIntake,
  isCurrent: (epoch: number) => boolean,
): ReturnType<typeof createAckSender> {
  const { config, client, session, signal, logger, events } = deps;
  return createAckSender({
    client,
    session,
    acknowledgeVia: config.acknowledgeVia,
    jobId: config.jobId,
    workerId: config.workerId,
    deadlineMs: config.ackDeadlineMs,
    retryTimeoutMs: config.ackRetryTimeoutMs,
    maxRequestBytes: config.maxAckRequestBytes,
    backoff: config.reconnect,
    isCurrent,
    signal,
    logger,
    onSending: (checkpointId, epoch) => intake.ackSent(epoch, checkpointId),
    onAnswer: (kind, checkpointId, epoch, accepted) => {
      if (kind === 'ack') intake.ackAnswered(epoch, checkpointId, accepted);
      else if (accepted) intake.beliefs.confirm(checkpointId);
    },
    onAcked: (e) => events.emit('checkpoint-acked', e),
    onDeclined: (e) => events.emit('checkpoint-declined', e),
    onFailed: (e) => events.emit('ack-failed', e),
  });
}

/** The policy's aligned checkpoint timeout (validated by the coordinator); anything but a positive number is off. */
function alignedTimeoutOf(value: unknown): number {
  const ms = Number(value ?? 0);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
