/**
 * A simulated worker for tests and benchmarks: scripted task behaviours
 * (acknowledge, decline, stay silent, or a hook) on the worker protocol
 * layer the SDK runs on (`src/worker-protocol`: session, subscriptions,
 * acknowledgement batching and sending), with the SDK's rules for what it
 * believes (`SimControl` on `ControlIntake`). It has no task code and no
 * state, and records everything it acknowledged and every broadcast it
 * believed.
 */
import { EventEmitter } from 'node:events';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import {
  connectNats,
  controlPrefix,
  epochOf,
  isBarrier,
  jobSubjects,
  type Edge,
  type JobSubjects,
} from '../../src/bus/index.js';
import { createCoordinatorClient, type CoordinatorClient } from '../../src/client/index.js';
import type { BackoffConfig } from '../../src/core/backoff.js';
import { CkptError } from '../../src/core/errors.js';
import type { AcknowledgeCheckpointResponse__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { CheckpointAbort__Output } from '../../src/gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../../src/gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../../src/gen/ckpt/v1/Recover.js';
import type { RestoreCommand__Output } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { StartCommand__Output } from '../../src/gen/ckpt/v1/StartCommand.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Welcome__Output } from '../../src/gen/ckpt/v1/Welcome.js';
import type { Logger } from '../../src/log/index.js';
import {
  AckBatcher,
  acknowledgeOnce,
  createAckSender,
  EdgeRecordCounts,
  subscribeControl,
  subscribeData,
  WorkerSession,
  type AckSenderOptions,
  type SubscriptionErrorHandler,
} from '../../src/worker-protocol/index.js';
import { CheckpointRunner } from './checkpoint-runner.js';
import type { SimEventMap } from './events.js';
import { resolveSimOptions, type SimConfig, type SimulatedWorkerOptions, type TaskBehaviour } from './options.js';
import { SimControl } from './sim-control.js';
import { workerTopology, type WorkerTopology } from './topology.js';
import { waitForEvent, type WaitOptions } from './wait.js';

/** The pauses between attach attempts and acknowledgement retries: from 50 ms, doubling up to 1 s. */
const SIM_BACKOFF: BackoffConfig = { initialDelayMs: 50, maxDelayMs: 1000, multiplier: 2, jitter: 0 };

/** Lifecycle of a simulated worker. */
export type SimWorkerState = 'starting' | 'running' | 'closing' | 'closed';

/** A running simulated worker. Create it with `startSimulatedWorker`. */
export class SimulatedWorker {
  /** Everything the worker reports (see `SimEventMap`). */
  readonly events = new EventEmitter<SimEventMap>();
  /** Every snapshot acknowledged successfully, by checkpoint id, in the order sent. */
  readonly acked = new Map<number, TaskSnapshot__Output[]>();
  /** Tasks that declined successfully, by checkpoint id. */
  readonly declined = new Map<number, string[]>();
  /** `complete` broadcasts received, by checkpoint id. */
  readonly completed = new Map<number, CheckpointComplete__Output>();
  /** `abort` broadcasts received, by checkpoint id. */
  readonly aborted = new Map<number, CheckpointAbort__Output>();
  /** `recover` broadcasts received, one per newer epoch, in order (advisory: never adopted). */
  readonly recovered: Recover__Output[] = [];
  /** Restore commands of the session, in order. */
  readonly restored: RestoreCommand__Output[] = [];
  /** Epochs in which the coordinator started the job. */
  readonly started: number[] = [];
  /** The worker's own NATS connection. */
  readonly nats: NatsConnection;
  /** The worker's own coordinator client. */
  readonly client: CoordinatorClient;

  readonly #config: SimConfig;
  readonly #topology: WorkerTopology;
  readonly #logger: Logger;
  readonly #batcher: AckBatcher;
  readonly #runner: CheckpointRunner;
  readonly #control: SimControl;
  readonly #session: WorkerSession;
  readonly #sender: AckSenderOptions;
  readonly #lifetime = new AbortController();
  readonly #recordCounts = new EdgeRecordCounts();
  #state: SimWorkerState = 'starting';
  #unsubscribe: (() => void)[] = [];
  #queued: (() => void)[] = [];

  /** Use `startSimulatedWorker`. */
  constructor(config: SimConfig, nc: NatsConnection, client: CoordinatorClient) {
    this.#config = config;
    this.nats = nc;
    this.client = client;
    this.#topology = workerTopology(config.spec, config.taskIds);
    this.#logger = config.logger.child({ component: 'sim', jobId: config.jobId, workerId: config.workerId });
    this.#session = this.#newSession();
    this.#sender = this.#senderOptions();
    this.#batcher = new AckBatcher({
      batchMs: config.ackBatchMs,
      expectedResults: config.taskIds.length,
      send: createAckSender(this.#sender),
    });
    const mode = config.spec.policy?.mode;
    this.#runner = new CheckpointRunner({
      nc,
      jobId: config.jobId,
      topology: this.#topology,
      unaligned: mode === 'CHECKPOINT_MODE_UNALIGNED' || mode === 2,
      stateBytes: config.stateBytes,
      behaviourOf: (taskId) => this.#config.behaviour[taskId] ?? this.#config.defaultBehaviour,
      batcher: this.#batcher,
      logger: this.#logger,
    });
    this.#control = new SimControl({
      jobId: config.jobId,
      sources: this.#topology.sources,
      runner: this.#runner,
      batcher: this.#batcher,
      events: this.events,
      records: this,
      logger: this.#logger,
    });
  }

  /** The job's epoch as the worker's session set it (its welcome, then its restores). */
  get epoch(): number {
    return this.#control.epoch;
  }

  /** The welcome of the session. */
  get welcome(): Welcome__Output | undefined {
    return this.#session.welcome;
  }

  /** The highest leader term seen in the session's welcomes and commands. */
  get term(): number {
    return this.#session.terms.highest;
  }

  /** `starting`, `running`, `closing` or `closed`. */
  get state(): SimWorkerState {
    return this.#state;
  }

  /** The local tasks without inputs. */
  get sourceTaskIds(): readonly string[] {
    return this.#topology.sources;
  }

  /**
   * Sends prepared acknowledgements of this worker's tasks as its tasks
   * would (in the session or as a call, as `acknowledgeVia` says), outside
   * any checkpoint round, once: for tests and benchmarks that acknowledge
   * by hand. Rejects with the refusal.
   */
  async acknowledge(
    request: { checkpointId: number; epoch: number; snapshots: TaskSnapshot__Output[] },
    deadlineMs = this.#config.ackDeadlineMs,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    const { checkpointId, epoch } = request;
    this.#control.ackSent(epoch, checkpointId);
    try {
      const response = await acknowledgeOnce(this.#sender, request, deadlineMs);
      this.#control.answered(true, epoch, checkpointId, true);
      return response;
    } catch (err) {
      this.#control.answered(true, epoch, checkpointId, false);
      throw err;
    }
  }

  /** Changes what `taskId` does from the next checkpoint on. */
  setBehaviour(taskId: string, behaviour: TaskBehaviour): void {
    this.#config.behaviour[taskId] = behaviour;
  }

  /** Stops or resumes heartbeats while the session stays open. */
  setHeartbeats(enabled: boolean): void {
    this.#session.pauseHeartbeats(!enabled);
  }

  /**
   * Resolves with the `complete` broadcast of `checkpointId` (at once if it
   * came already). Rejects with `CkptError('CHECKPOINT_ABORTED')` if an
   * `abort` for it comes instead, and on timeout (default 30 s) or close.
   */
  async waitForComplete(checkpointId: number, options: WaitOptions = {}): Promise<CheckpointComplete__Output> {
    const aborted = (): CkptError =>
      new CkptError('CHECKPOINT_ABORTED', `checkpoint ${checkpointId} aborted`, {
        jobId: this.#config.jobId,
        checkpointId,
      });
    const done = this.completed.get(checkpointId);
    if (done !== undefined) return done;
    if (this.aborted.has(checkpointId)) throw aborted();
    const abortWatch = new AbortController();
    const signals = [this.#lifetime.signal, abortWatch.signal, ...(options.signal ? [options.signal] : [])];
    const onAbort = (m: CheckpointAbort__Output): void => {
      if (m.checkpointId === checkpointId) abortWatch.abort(aborted());
    };
    this.events.on('abort', onAbort);
    try {
      const [message] = await waitForEvent(this.events, 'complete', ([m]) => m.checkpointId === checkpointId, {
        timeoutMs: options.timeoutMs,
        signal: AbortSignal.any(signals),
      });
      return message;
    } catch (err) {
      throw abortWatch.signal.aborted ? (abortWatch.signal.reason as CkptError) : err;
    } finally {
      this.events.off('abort', onAbort);
    }
  }

  /** Resolves with the arguments of the next `name` event that `match` accepts (default: any). */
  waitFor<K extends keyof SimEventMap>(
    name: K,
    match: (args: SimEventMap[K]) => boolean = () => true,
    options: WaitOptions = {},
  ): Promise<SimEventMap[K]> {
    const signal = options.signal ? AbortSignal.any([options.signal, this.#lifetime.signal]) : this.#lifetime.signal;
    return waitForEvent(this.events, name, match, { timeoutMs: options.timeoutMs, signal });
  }

  /** Opens the session and the subscriptions; called once by `startSimulatedWorker`. */
  async start(): Promise<void> {
    const expected = jobSubjects(controlPrefix(this.#config.subjectPrefix, this.#config.jobId));
    // Subscribe before the hello, so that a trigger right after the welcome is not missed.
    await this.#subscribe(expected);
    const welcome = await this.#session.open(this.#config.reattach ? this.#config.attachTimeoutMs : 0);
    if (welcome.controlSubjectPrefix !== expected.prefix) {
      this.#logger.warn({ prefix: welcome.controlSubjectPrefix }, 'the coordinator uses another subject prefix');
      this.#unsubscribeAll();
      await this.#subscribe(jobSubjects(welcome.controlSubjectPrefix));
    }
    this.#runner.bind(jobSubjects(welcome.controlSubjectPrefix));
    this.#control.bind(welcome);
    this.#state = 'running';
    this.#logger.debug({ epoch: welcome.epoch, tasks: this.#config.taskIds.length }, 'attached');
    this.events.emit('welcome', welcome);
    for (const run of this.#queued.splice(0)) run();
  }

  /**
   * Stops cleanly: sends what is batched, ends the session and waits for the
   * coordinator to close it, unsubscribes, drains NATS, closes the channel.
   */
  async close(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    await this.#batcher.flushAll();
    this.#batcher.close();
    await this.#session.close();
    this.#unsubscribeAll();
    await this.nats.drain().catch(() => this.nats.close());
    this.client.close();
    this.#control.flush();
    this.#state = 'closed';
    this.#lifetime.abort(new CkptError('SHUTTING_DOWN', 'the simulated worker is closed'));
  }

  /** Drops everything at once, like a crashed process: no flush, no clean end of the session. */
  kill(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#batcher.close();
    this.#session.cancel();
    this.#unsubscribeAll();
    void this.nats.close().catch(() => {});
    this.client.close();
    this.#lifetime.abort(new CkptError('SHUTTING_DOWN', 'the simulated worker was killed'));
  }

  /** Reports a task failure on the session, as a crashing task would. */
  fail(taskId: string, message: string): void {
    this.#session.send({ failure: { epoch: this.epoch, taskId, message } });
  }

  async #subscribe(subjects: JobSubjects): Promise<void> {
    const onError: SubscriptionErrorHandler = (err, subject, msg) => {
      if (msg === undefined) this.#logger.warn({ err, subject }, 'subscription failed');
      else this.#logger.debug({ err, subject: msg.subject }, 'message dropped');
    };
    const intake = {
      receive: (kind: Parameters<SimControl['receive']>[0], data: Uint8Array) =>
        this.#gate(() => this.#control.receive(kind, data)),
    };
    const hasSources = this.#topology.sources.length > 0;
    this.#unsubscribe.push(await subscribeControl(this.nats, subjects, intake, hasSources, onError));
    const onEdge = (edge: Edge, msg: Msg): void => this.#gate(() => this.#onData(msg, edge));
    this.#unsubscribe.push(await subscribeData(this.nats, subjects, this.#topology.inputsByTask, onEdge, onError));
  }

  #unsubscribeAll(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  /** Runs `handle` now when running, after the welcome when starting, never when closed. */
  #gate(handle: () => void): void {
    if (this.#state === 'starting') this.#queued.push(handle);
    else if (this.#state === 'running') handle();
  }

  #newSession(): WorkerSession {
    const config = this.#config;
    return new WorkerSession({
      client: this.client,
      jobId: config.jobId,
      workerId: config.workerId,
      taskIds: config.taskIds,
      labels: config.labels,
      attachTimeoutMs: config.attachTimeoutMs,
      reconnect: config.reattach,
      backoff: SIM_BACKOFF,
      logger: this.#logger,
      handlers: {
        helloEpoch: () => this.epoch,
        taskHealth: () => [],
        onWelcome: (welcome, resumed) => {
          if (resumed) this.#gate(() => this.#resumed(welcome));
        },
        onCommand: (message) => this.#gate(() => this.#command(message)),
        onHeartbeat: (sentAtMs) => this.events.emit('heartbeat', { sentAtMs }),
        onStaleCommand: (message, term) =>
          this.#dropped(message.body ?? 'command', 'stale-term', message.restore?.epoch ?? message.start?.epoch ?? 0, {
            term,
            currentTerm: this.term,
          }),
        onLost: (error) => this.#sessionEnded(error),
        onFatal: (error) => this.#sessionEnded(error),
      },
    });
  }

  #senderOptions(): AckSenderOptions {
    const config = this.#config;
    return {
      client: this.client,
      session: this.#session,
      acknowledgeVia: config.acknowledgeVia,
      jobId: config.jobId,
      workerId: config.workerId,
      deadlineMs: config.ackDeadlineMs,
      retryTimeoutMs: config.ackRetryTimeoutMs,
      maxRequestBytes: config.maxAckRequestBytes,
      backoff: SIM_BACKOFF,
      isCurrent: (epoch) => epoch === this.epoch && this.#state !== 'closed',
      signal: this.#lifetime.signal,
      logger: this.#logger,
      onSending: (checkpointId, epoch) => this.#control.ackSent(epoch, checkpointId),
      onAnswer: (kind, checkpointId, epoch, accepted) =>
        this.#control.answered(kind === 'ack', epoch, checkpointId, accepted),
      onAcked: ({ checkpointId, epoch, taskIds, snapshots, response }) => {
        const sent = snapshots as TaskSnapshot__Output[];
        this.acked.set(checkpointId, [...(this.acked.get(checkpointId) ?? []), ...sent]);
        this.events.emit('acked', { checkpointId, epoch, taskIds, response });
      },
      onDeclined: ({ checkpointId, epoch, taskIds }) => {
        this.declined.set(checkpointId, [...(this.declined.get(checkpointId) ?? []), ...taskIds]);
        this.events.emit('declined', { checkpointId, epoch, taskIds });
      },
      onFailed: ({ kind, checkpointId, epoch, taskIds, error }) => {
        const method = kind === 'ack' ? 'acknowledgeCheckpoint' : 'declineCheckpoint';
        this.events.emit('call-failed', { checkpointId, epoch, taskIds, method, error });
      },
    };
  }

  /**
   * A record or barrier on an input edge. Records are only counted: a
   * barrier that counts more records than the edge delivered in its epoch
   * means records were lost in transit, and its reader fails, as an SDK
   * task would.
   */
  #onData(msg: Msg, edge: Edge): void {
    const barrier = isBarrier(msg.headers);
    if (epochOf(msg.headers) !== this.epoch) {
      if (barrier) this.#control.barrier(msg, edge, () => {});
      return;
    }
    if (!barrier) {
      this.#recordCounts.record(edge);
      return;
    }
    this.#control.barrier(msg, edge, (b) => {
      const lost = this.#recordCounts.lost(edge, this.epoch, b.checkpointId, b.records);
      if (lost === undefined) this.#runner.onBarrier(edge, b, Date.now());
      else this.fail(edge.to, lost.message);
    });
  }

  #command(message: AttachResponse__Output): void {
    if (message.restore) this.#onRestore(message.restore);
    else if (message.start) this.#onStart(message.start);
    else if (message.canceled) this.events.emit('canceled', message.canceled);
  }

  /** A simulated task has no state to fetch: it adopts the epoch and reports ready at once. */
  #onRestore(command: RestoreCommand__Output): void {
    if (command.epoch < this.epoch) {
      this.#dropped('restore', 'other-epoch', command.epoch);
      return;
    }
    const { checkpointId, nextCheckpointId } = command;
    if (command.epoch !== this.epoch) this.#recordCounts.reset();
    this.#control.applySession(command.epoch, { checkpointId, nextCheckpointId }, command.term, true);
    this.restored.push(command);
    this.events.emit('restore', command);
    this.#session.send({ ready: { epoch: command.epoch, taskIds: [...this.#config.taskIds] } });
  }

  #onStart(command: StartCommand__Output): void {
    if (command.epoch !== this.epoch) return;
    this.#control.confirmTerm(command.term);
    this.started.push(command.epoch);
    this.events.emit('start', command);
  }

  /** A welcome after a reconnect: its epoch, ids and term are the worker's. */
  #resumed(welcome: Welcome__Output): void {
    const ids = { checkpointId: welcome.latestCheckpointId, nextCheckpointId: welcome.nextCheckpointId };
    if (welcome.epoch !== this.epoch) this.#recordCounts.reset();
    this.#control.applySession(welcome.epoch, ids, welcome.term, false);
    this.#logger.debug({ epoch: welcome.epoch, term: welcome.term, address: this.client.address }, 'attached again');
    this.events.emit('welcome', welcome);
  }

  #dropped(what: string, reason: string, epoch: number, terms: { term?: number; currentTerm?: number } = {}): void {
    this.events.emit('dropped', { what, reason, epoch, currentEpoch: this.epoch, ...terms });
  }

  /** The session ended; the coordinator's own error (a `ServiceError`) is reported when it sent one. */
  #sessionEnded(error: CkptError): void {
    this.#logger.debug({ err: error }, 'session ended');
    const reported = error.cause instanceof Error ? error.cause : error;
    this.events.emit('session-ended', { error: reported });
  }
}

/**
 * Starts a simulated worker: connects to NATS, subscribes, opens the
 * session and resolves after the welcome. Rejects with the coordinator's
 * `ServiceError` if it refuses the hello (read it with `errorReason`), or
 * with `CkptError('MALFORMED')` for bad options; nothing stays open then.
 */
export async function startSimulatedWorker(options: SimulatedWorkerOptions): Promise<SimulatedWorker> {
  const config = resolveSimOptions(options);
  workerTopology(config.spec, config.taskIds);
  const nc = await connectNats(config.nats, `ckpt-sim-${config.workerId}`, { logger: config.logger });
  const client = createCoordinatorClient(config.coordinator, {
    ...(config.token === undefined ? {} : { token: config.token }),
    ...(config.tls === undefined ? {} : { tls: config.tls }),
    ...(config.keepalive === undefined ? {} : { keepalive: config.keepalive }),
  });
  const worker = new SimulatedWorker(config, nc, client);
  try {
    await worker.start();
    return worker;
  } catch (err) {
    worker.kill();
    throw err instanceof CkptError && err.cause instanceof Error ? err.cause : err;
  }
}
