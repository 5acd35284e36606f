/**
 * A simulated worker for tests, the demo and benchmarks. It speaks the raw
 * protocol (gRPC `Attach` and acknowledgements, NATS triggers, barriers and
 * broadcasts) without the SDK's tasks, on the same protocol layer as the
 * SDK for what it believes (`SimControl`), and records everything it
 * acknowledged and every broadcast it believed.
 */
import type { RestoreCommand__Output } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { StartCommand__Output } from '../../src/gen/ckpt/v1/StartCommand.js';
import { EventEmitter } from 'node:events';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { connectNats, controlPrefix, isBarrier, jobSubjects, LeaderTerms, type Edge } from '../../src/bus/index.js';
import { createCoordinatorClient, type CoordinatorClient } from '../../src/client/index.js';
import type { AcknowledgeCheckpointResponse__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import { CkptError } from '../../src/core/errors.js';
import type { CheckpointAbort__Output } from '../../src/gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../../src/gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../../src/gen/ckpt/v1/Recover.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Welcome__Output } from '../../src/gen/ckpt/v1/Welcome.js';
import type { Logger } from '../../src/log/index.js';
import { AckBatcher } from './ack-batcher.js';
import { SimAckSender } from './ack-sender.js';
import { CheckpointRunner } from './checkpoint-runner.js';
import type { SimEventMap } from './events.js';
import { resolveSimOptions, type SimConfig, type SimulatedWorkerOptions, type TaskBehaviour } from './options.js';
import { mayReattach, openFollowing, reattach } from './reattach.js';
import type { AttachSession, SessionOptions } from './session.js';
import { SimControl } from './sim-control.js';
import { subscribeWorker } from './subscriptions.js';
import { workerTopology, type WorkerTopology } from './topology.js';
import { waitForEvent, type WaitOptions } from './wait.js';

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
  readonly #sender: SimAckSender;
  readonly #lifetime = new AbortController();
  /** Aborted when the worker closes or is killed: stops attaching again. */
  readonly #detach = new AbortController();
  /** The highest leader term of the session's welcomes and commands. */
  readonly #terms = new LeaderTerms();
  #state: SimWorkerState = 'starting';
  #session: AttachSession | undefined;
  #unsubscribe: () => void = () => {};
  #queued: (() => void)[] = [];
  #reattaching: Promise<void> | undefined;

  /** Use `startSimulatedWorker`. */
  constructor(config: SimConfig, nc: NatsConnection, client: CoordinatorClient) {
    this.#config = config;
    this.nats = nc;
    this.client = client;
    this.#topology = workerTopology(config.spec, config.taskIds);
    this.#logger = config.logger.child({ component: 'sim', jobId: config.jobId, workerId: config.workerId });
    this.#batcher = new AckBatcher({
      batchMs: config.ackBatchMs,
      expectedResults: config.taskIds.length,
      send: (batch) => this.#sender.send(batch),
      logger: this.#logger,
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
    this.#sender = new SimAckSender({
      config,
      client,
      session: () => this.#session,
      control: this.#control,
      events: this.events,
      acked: this.acked,
      declined: this.declined,
      logger: this.#logger,
    });
  }

  /** The job's epoch as the worker's session set it (its welcome, then its restores). */
  get epoch(): number {
    return this.#control.epoch;
  }

  /** The welcome of the session. */
  get welcome(): Welcome__Output | undefined {
    return this.#session?.welcome;
  }

  /** The highest leader term seen in the session's welcomes and commands. */
  get term(): number {
    return this.#terms.highest;
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
   * any checkpoint round: for tests and benchmarks that acknowledge by hand.
   */
  acknowledge(
    request: { checkpointId: number; epoch: number; snapshots: TaskSnapshot__Output[] },
    deadlineMs = this.#config.ackDeadlineMs,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    return this.#sender.acknowledge(request, deadlineMs);
  }

  /** Changes what `taskId` does from the next checkpoint on. */
  setBehaviour(taskId: string, behaviour: TaskBehaviour): void {
    this.#config.behaviour[taskId] = behaviour;
  }

  /** Stops or resumes heartbeats while the session stays open. */
  setHeartbeats(enabled: boolean): void {
    this.#session?.setHeartbeats(enabled);
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
    this.#unsubscribe = await subscribeWorker(this.nats, expected, this.#topology, this.#handlers(), this.#logger);
    const { reattach: follow, attachTimeoutMs } = this.#config;
    const options = (): SessionOptions => this.#sessionOptions();
    this.#session = await openFollowing(this.client, options, follow, attachTimeoutMs, this.#detach.signal);
    const welcome = this.#session.welcome;
    this.#terms.admit(welcome.term);
    if (welcome.controlSubjectPrefix !== expected.prefix) await this.#rebind(welcome.controlSubjectPrefix);
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
    this.#detach.abort();
    await this.#reattaching;
    await this.#batcher.flushAll();
    this.#batcher.close();
    await this.#session?.end();
    this.#unsubscribe();
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
    this.#detach.abort();
    this.#batcher.close();
    this.#session?.cancel();
    this.#unsubscribe();
    void this.nats.close().catch(() => {});
    this.client.close();
    this.#lifetime.abort(new CkptError('SHUTTING_DOWN', 'the simulated worker was killed'));
  }

  async #rebind(prefix: string): Promise<void> {
    this.#logger.warn({ prefix }, 'the coordinator uses another subject prefix; resubscribing');
    this.#unsubscribe();
    this.#unsubscribe = await subscribeWorker(
      this.nats,
      jobSubjects(prefix),
      this.#topology,
      this.#handlers(),
      this.#logger,
    );
  }

  #handlers(): Parameters<typeof subscribeWorker>[3] {
    return {
      trigger: (msg) => this.#gate(() => this.#control.receive('trigger', msg)),
      complete: (msg) => this.#gate(() => this.#control.receive('complete', msg)),
      abort: (msg) => this.#gate(() => this.#control.receive('abort', msg)),
      recover: (msg) => this.#gate(() => this.#control.receive('recover', msg)),
      data: (msg, edge) => this.#gate(() => this.#onData(msg, edge)),
    };
  }

  /** Runs `handle` now when running, after the welcome when starting, never when closed. */
  #gate(handle: () => void): void {
    if (this.#state === 'starting') this.#queued.push(handle);
    else if (this.#state === 'running') handle();
  }

  #sessionOptions(): SessionOptions {
    return {
      client: this.client,
      jobId: this.#config.jobId,
      workerId: this.#config.workerId,
      taskIds: this.#config.taskIds,
      labels: this.#config.labels,
      epoch: this.epoch,
      attachTimeoutMs: this.#config.attachTimeoutMs,
      logger: this.#logger,
      onCanceled: (command) => this.events.emit('canceled', command),
      onRestore: (command) => this.#gate(() => this.#onRestore(command)),
      onStart: (command) => this.#gate(() => this.#onStart(command)),
      onEnded: (error) => this.#sessionEnded(error),
    };
  }

  #onData(msg: Msg, edge: Edge): void {
    if (!isBarrier(msg.headers)) return;
    this.#control.barrier(msg, edge, (barrier) => this.#runner.onBarrier(edge, barrier, Date.now()));
  }

  /** A simulated task has no state to fetch: it adopts the epoch and reports ready at once. */
  #onRestore(command: RestoreCommand__Output): void {
    if (!this.#currentTerm('restore', command)) return;
    if (command.epoch < this.epoch) {
      this.#dropped('restore', 'other-epoch', command.epoch);
      return;
    }
    const { checkpointId, nextCheckpointId } = command;
    this.#control.applySession(command.epoch, { checkpointId, nextCheckpointId }, command.term, true);
    this.restored.push(command);
    this.events.emit('restore', command);
    this.#session?.sendReady(command.epoch, this.#config.taskIds);
  }

  #onStart(command: StartCommand__Output): void {
    if (!this.#currentTerm('start', command)) return;
    if (command.epoch !== this.epoch) return;
    this.#control.confirmTerm(command.term);
    this.started.push(command.epoch);
    this.events.emit('start', command);
  }

  /** Reports a task failure on the session, as a crashing task would. */
  fail(taskId: string, message: string): void {
    this.#session?.sendFailure(this.epoch, taskId, message);
  }

  /** False, reporting a drop, for a command of a lower term than the highest seen (a deposed leader's). */
  #currentTerm(what: string, message: { term: number; epoch: number }): boolean {
    if (this.#terms.admit(message.term)) return true;
    this.#dropped(what, 'stale-term', message.epoch, { term: message.term, currentTerm: this.#terms.highest });
    return false;
  }

  #dropped(what: string, reason: string, epoch: number, terms: { term?: number; currentTerm?: number } = {}): void {
    this.events.emit('dropped', { what, reason, epoch, currentEpoch: this.epoch, ...terms });
  }

  #sessionEnded(error?: Error): void {
    this.#logger.debug({ err: error }, 'session ended');
    this.events.emit('session-ended', error === undefined ? {} : { error });
    if (!this.#config.reattach || this.#state !== 'running' || !mayReattach(error)) return;
    if (error !== undefined) this.client.followLeader(error);
    this.#reattaching ??= this.#reattach().finally(() => {
      this.#reattaching = undefined;
    });
  }

  async #reattach(): Promise<void> {
    const accept = (session: AttachSession): boolean => this.#terms.admit(session.welcome.term);
    const session = await reattach(
      this.client,
      () => this.#sessionOptions(),
      accept,
      this.#detach.signal,
      this.#logger,
    );
    if (session === undefined) return;
    if (this.#state !== 'running') {
      session.cancel();
      return;
    }
    this.#session = session;
    const welcome = session.welcome;
    const ids = { checkpointId: welcome.latestCheckpointId, nextCheckpointId: welcome.nextCheckpointId };
    this.#control.applySession(welcome.epoch, ids, welcome.term, false);
    this.#logger.debug({ epoch: welcome.epoch, term: welcome.term, address: this.client.address }, 'attached again');
    this.events.emit('welcome', welcome);
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
  const client = createCoordinatorClient(config.coordinator, config.token === undefined ? {} : { token: config.token });
  const worker = new SimulatedWorker(config, nc, client);
  try {
    await worker.start();
    return worker;
  } catch (err) {
    worker.kill();
    throw err;
  }
}
