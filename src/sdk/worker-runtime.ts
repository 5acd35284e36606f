/**
 * What a worker runs once its session is welcomed: the task runners wired
 * to the job graph, the data and control subscriptions, acknowledgement
 * batching and snapshot retention, and the handling of the coordinator's
 * commands and broadcasts in epochs.
 */
import type { EventEmitter } from 'node:events';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { controlMessageCodecs, epochOf, isBarrier, jobSubjects, type LeaderTerms } from '../bus/index.js';
import type { CoordinatorClient } from '../client/index.js';
import { CkptError } from '../core/errors.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import type { CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../gen/ckpt/v1/Recover.js';
import type { RestoreCommand__Output } from '../gen/ckpt/v1/RestoreCommand.js';
import type { TaskHealth } from '../gen/ckpt/v1/TaskHealth.js';
import type { Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import type { Logger } from '../log/index.js';
import { AckBatcher } from './ack-batcher.js';
import { createAckSender } from './ack-sender.js';
import type { WorkerSession } from './session.js';
import { subscribeControl } from './control.js';
import { DataPlane } from './data-plane.js';
import type { WorkerEventMap } from './events.js';
import { jobGraph, type JobGraph } from './graph.js';
import type { WorkerConfig } from './options.js';
import { recordOfMessage } from './record.js';
import { SnapshotRetention } from './retention.js';
import type { Edge } from './subjects.js';
import { TaskRunner } from './task-runner.js';
import type { AnyTask } from './task.js';
import { alignmentModeOf, checkWiring } from './wiring.js';

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
  /** The session, for acknowledgements sent in it. */
  session: Pick<WorkerSession, 'connected' | 'request'>;
  /** The highest leader term the session has seen; control messages of a lower one are dropped. */
  terms: LeaderTerms;
  /** Aborted when the worker stops. */
  signal: AbortSignal;
  logger: Logger;
}

/** The wired worker: runners, subscriptions, acknowledgements, epochs. */
export class WorkerRuntime {
  readonly #d: RuntimeDeps;
  readonly #graph: JobGraph;
  readonly #runners = new Map<string, TaskRunner>();
  readonly #batcher: AckBatcher;
  readonly #retention: SnapshotRetention;
  readonly #barrierCodec = controlMessageCodecs().barrier;
  #unsubscribe: (() => void)[] = [];
  /** Records received per input edge in the current epoch, checked against each barrier's count. */
  readonly #received = new Map<Edge, number>();
  #epoch: number;
  #restoredEpoch = -1;
  #startRequested = -1;
  #started = false;
  #commands: Promise<void> = Promise.resolve();
  #restoreAbort = new AbortController();
  #closed = false;

  private constructor(deps: RuntimeDeps, graph: JobGraph) {
    this.#d = deps;
    this.#graph = graph;
    this.#epoch = deps.welcome.epoch;
    const { config } = deps;
    this.#batcher = new AckBatcher({
      batchMs: config.ackBatchMs,
      expectedResults: deps.tasks.size,
      send: createAckSender({
        client: deps.client,
        session: deps.session,
        acknowledgeVia: config.acknowledgeVia,
        jobId: config.jobId,
        workerId: config.workerId,
        deadlineMs: config.ackDeadlineMs,
        retryTimeoutMs: config.ackRetryTimeoutMs,
        backoff: config.reconnect,
        isCurrent: (epoch) => epoch === this.#epoch && !this.#closed,
        signal: deps.signal,
        logger: deps.logger,
        onAcked: (e) => deps.events.emit('checkpoint-acked', e),
        onDeclined: (e) => deps.events.emit('checkpoint-declined', e),
        onFailed: (e) => deps.events.emit('ack-failed', e),
      }),
    });
    this.#retention = new SnapshotRetention({
      retained: deps.welcome.spec?.policy?.retained ?? 1,
      taskIds: [...deps.tasks.keys()],
      release: (taskId, keepFrom) => config.state.release(config.jobId, taskId, new Set(), keepFrom),
      logger: deps.logger,
    });
  }

  /**
   * Checks the welcome's spec against the worker's tasks, builds the runners
   * and subscribes. Throws a `CkptError` for tasks that do not fit the graph.
   */
  static async create(deps: RuntimeDeps): Promise<WorkerRuntime> {
    const spec = deps.welcome.spec;
    if (spec === null)
      throw new CkptError('MALFORMED', 'the welcome carries no job spec', { jobId: deps.config.jobId });
    const graph = jobGraph(spec);
    checkWiring(graph, deps.tasks);
    const mode = alignmentModeOf(spec.policy?.mode);
    const runtime = new WorkerRuntime(deps, graph);
    const plane = new DataPlane(deps.nc, deps.welcome.controlSubjectPrefix, deps.logger);
    for (const [taskId, task] of deps.tasks) runtime.#addRunner(taskId, task, plane, mode);
    await runtime.#subscribe(plane);
    void runtime.#watchConnection();
    return runtime;
  }

  /** The epoch the worker is in (from the welcome, a restore or a recover). */
  get epoch(): number {
    return this.#epoch;
  }

  /** The epoch the worker's tasks have restored and run in; 0 before the first restore. */
  get runningEpoch(): number {
    return this.#restoredEpoch === this.#epoch ? this.#epoch : 0;
  }

  /**
   * How each task is doing, for the heartbeats: once the tasks run in the
   * current epoch (a task restoring is not reported; the restore has its own
   * bounds), how long each has been in its current call and its snapshot.
   */
  taskHealth(): TaskHealth[] {
    if (this.runningEpoch === 0 || this.#closed) return [];
    const now = performance.now();
    return [...this.#runners.values()].map((runner) => runner.health(now));
  }

  /** The runner of `taskId`, for inspection. */
  runner(taskId: string): TaskRunner | undefined {
    return this.#runners.get(taskId);
  }

  /** Handles a command of the session, one at a time in arrival order. */
  onCommand(message: AttachResponse__Output): void {
    this.#commands = this.#commands
      .then(() => this.#command(message))
      .catch((err: unknown) => this.#d.logger.error({ err, command: message.body }, 'command failed'));
  }

  /** A welcome after a reconnect: tasks in the current epoch carry on; any other epoch stops them. */
  onResumed(welcome: Welcome__Output): void {
    if (welcome.controlSubjectPrefix !== this.#d.welcome.controlSubjectPrefix) {
      this.#d.logger.warn({ prefix: welcome.controlSubjectPrefix }, 'the coordinator names another control prefix');
    }
    if (welcome.epoch !== this.#epoch) this.#enterEpoch(welcome.epoch);
  }

  /**
   * Stops gracefully: unsubscribes, lets the snapshots being stored finish,
   * sends what is batched, and closes the runners.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#restoreAbort.abort(new CkptError('SHUTTING_DOWN', 'the worker is stopping'));
    await Promise.all([...this.#runners.values()].map((r) => r.settleUploads()));
    await this.#batcher.flushAll();
    this.#closed = true;
    this.#batcher.close();
    await Promise.all([...this.#runners.values()].map((r) => r.close()));
    await this.#retention.settled();
    await this.#commands;
  }

  // --- wiring ---------------------------------------------------------------

  #addRunner(taskId: string, task: AnyTask, plane: DataPlane, mode: ReturnType<typeof alignmentModeOf>): void {
    const { config } = this.#d;
    const runner = new TaskRunner({
      jobId: config.jobId,
      taskId,
      task,
      inputs: this.#graph.inputsOf(taskId),
      outputs: this.#graph.outputsOf(taskId),
      mode,
      plane,
      backend: config.state,
      nats: this.#d.nc,
      logger: this.#d.logger.child({ taskId }),
      maxQueuedSourceMessages: config.maxQueuedSourceMessages,
      abandonCallAfterMs: config.abandonCallAfterMs,
      onResult: (checkpointId, epoch, result) => this.#batcher.add(checkpointId, epoch, result),
      onSnapshot: (event) => this.#d.events.emit('snapshot', event),
      onFailure: (failed, epoch, error) => this.#taskFailed(failed, epoch, error),
    });
    this.#runners.set(taskId, runner);
  }

  async #subscribe(plane: DataPlane): Promise<void> {
    const readers = new Map<string, readonly string[]>();
    for (const taskId of this.#runners.keys()) {
      const inputs = this.#graph.inputsOf(taskId);
      if (inputs.length > 0) readers.set(taskId, inputs);
    }
    const hasSources = readers.size < this.#runners.size;
    const subjects = jobSubjects(this.#d.welcome.controlSubjectPrefix);
    const control = await subscribeControl(
      this.#d.nc,
      subjects,
      {
        trigger: (m) => this.#onTrigger(m),
        complete: (m) => this.#onComplete(m),
        abort: (m) => this.#onAbort(m),
        recover: (m) => this.#onRecover(m),
      },
      hasSources,
      this.#d.logger,
      this.#d.terms,
    );
    this.#unsubscribe.push(control);
    this.#unsubscribe.push(await plane.subscribe(readers, (edge, msg) => this.#onData(edge, msg)));
  }

  // --- commands -------------------------------------------------------------

  async #command(message: AttachResponse__Output): Promise<void> {
    if (this.#closed) return;
    if (message.restore) await this.#restore(message.restore);
    else if (message.start) this.#start(message.start.epoch);
    else if (message.canceled) this.#d.events.emit('canceled', message.canceled);
  }

  async #restore(command: RestoreCommand__Output): Promise<void> {
    const { epoch, checkpointId } = command;
    if (epoch < this.#epoch) {
      this.#d.logger.debug({ epoch, current: this.#epoch }, 'restore of an old epoch ignored');
      return;
    }
    this.#enterEpoch(epoch);
    const signal = this.#restoreAbort.signal;
    const byTask = new Map(command.snapshots.map((s) => [s.taskId, s]));
    const restored = await Promise.all(
      [...this.#runners.values()].map(async (runner) => {
        try {
          await runner.restore({ epoch, checkpointId, snapshot: byTask.get(runner.taskId), signal });
          return runner.taskId;
        } catch (err) {
          if (!signal.aborted && epoch === this.#epoch) this.#taskFailed(runner.taskId, epoch, CkptError.from(err));
          return undefined;
        }
      }),
    );
    if (signal.aborted || epoch !== this.#epoch) return;
    const taskIds = restored.filter((id): id is string => id !== undefined);
    this.#retention.committed(checkpointId);
    this.#restoredEpoch = epoch;
    this.#d.logger.info({ epoch, checkpointId, tasks: taskIds.length }, 'restored');
    this.#d.events.emit('restored', { epoch, checkpointId, taskIds });
    if (taskIds.length > 0) this.#d.send({ ready: { epoch, taskIds } });
    if (this.#startRequested === epoch) this.#start(epoch);
  }

  #start(epoch: number): void {
    if (epoch !== this.#epoch) return;
    this.#startRequested = epoch;
    if (this.#restoredEpoch !== epoch || this.#started) return;
    this.#started = true;
    for (const runner of this.#runners.values()) runner.start(epoch);
    this.#d.logger.info({ epoch }, 'started');
    this.#d.events.emit('started', { epoch });
  }

  /** Moves to `epoch`: every task stops at once and drops what it queued; a restore follows. */
  #enterEpoch(epoch: number): void {
    this.#restoreAbort.abort(new CkptError('STALE_EPOCH', `epoch ${epoch} supersedes ${this.#epoch}`));
    this.#restoreAbort = new AbortController();
    this.#epoch = epoch;
    this.#started = false;
    this.#restoredEpoch = -1;
    this.#batcher.discardOtherEpochs(epoch);
    this.#received.clear();
    for (const runner of this.#runners.values()) runner.halt();
  }

  #taskFailed(taskId: string, epoch: number, error: CkptError): void {
    this.#d.events.emit('failed', { taskId, epoch, error });
    if (epoch !== this.#epoch || this.#closed) return;
    this.#d.send({ failure: { taskId, epoch, message: error.message } });
  }

  /**
   * A dropped NATS connection or a slow-consumer drop loses records and
   * barriers in flight on core NATS subjects. A barrier's record count would
   * reveal the loss at the next checkpoint; failing a task at once makes the
   * job recover now instead of after that checkpoint or its timeout.
   */
  async #watchConnection(): Promise<void> {
    try {
      for await (const status of this.#d.nc.status()) {
        if (this.#closed) return;
        if (status.type === 'disconnect') this.#connectionLost(`the NATS connection to ${status.server} dropped`);
        else if (status.type === 'slowConsumer') {
          this.#connectionLost(`NATS dropped messages of ${status.sub.getSubject()} (slow consumer)`);
        }
      }
    } catch (err) {
      this.#d.logger.debug({ err }, 'NATS status ended');
    }
  }

  #connectionLost(what: string): void {
    const taskId = this.#runners.keys().next().value;
    if (taskId === undefined || this.#restoredEpoch !== this.#epoch) return;
    const message = `${what}: records and barriers in flight may be lost`;
    this.#taskFailed(taskId, this.#epoch, new CkptError('UNAVAILABLE', message));
  }

  // --- broadcasts and data --------------------------------------------------

  #onTrigger(trigger: Trigger__Output): void {
    if (trigger.epoch !== this.#epoch) return;
    for (const runner of this.#runners.values()) {
      if (this.#graph.inputsOf(runner.taskId).length === 0) {
        runner.trigger(trigger.epoch, trigger.checkpointId, trigger.snapshotType);
      }
    }
  }

  #onComplete(complete: CheckpointComplete__Output): void {
    this.#d.events.emit('complete', complete);
    this.#retention.committed(complete.checkpointId);
    for (const runner of this.#runners.values()) runner.complete(complete.checkpointId);
  }

  #onAbort(abort: CheckpointAbort__Output): void {
    this.#d.events.emit('abort', abort);
    const upTo = abort.reason === 'ABORT_REASON_COORDINATOR_RESTART';
    this.#batcher.discard(abort.checkpointId, upTo);
    for (const runner of this.#runners.values()) runner.abort(abort.checkpointId, upTo);
  }

  #onRecover(recover: Recover__Output): void {
    if (recover.epoch <= this.#epoch) return;
    this.#d.logger.info({ epoch: recover.epoch, checkpointId: recover.checkpointId }, 'recovering');
    this.#enterEpoch(recover.epoch);
    this.#d.events.emit('recover', recover);
  }

  #onData(edge: Edge, msg: Msg): void {
    const runner = this.#runners.get(edge.to);
    const epoch = epochOf(msg.headers);
    if (runner === undefined || epoch !== this.#epoch) return;
    const received = this.#received.get(edge) ?? 0;
    if (!isBarrier(msg.headers)) {
      this.#received.set(edge, received + 1);
      runner.offerRecord(epoch, edge.from, recordOfMessage(msg, edge.from));
      return;
    }
    const barrier = this.#barrierCodec.decode(msg.data);
    if (barrier.epoch !== epoch) return;
    if (barrier.records !== received) {
      // Records were lost in transit: snapshotting now would commit state
      // without them, so the task fails and the job recovers.
      const message =
        `records lost on edge ${edge.from} -> ${edge.to} in epoch ${epoch}: ` +
        `${barrier.records} sent before barrier ${barrier.checkpointId}, ${received} received`;
      this.#d.logger.warn({ edge, epoch, sent: barrier.records, received }, 'records lost in transit');
      this.#taskFailed(edge.to, epoch, new CkptError('UNAVAILABLE', message));
      return;
    }
    runner.offerBarrier(epoch, edge.from, barrier.checkpointId, barrier.snapshotType);
  }
}
