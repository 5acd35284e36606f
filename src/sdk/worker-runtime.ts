/**
 * What a worker runs once its session is welcomed: the task runners wired
 * to the job graph, the data and control subscriptions, acknowledgement
 * batching (each built in `runtime-wiring.ts`), and the handling of the
 * coordinator's commands in epochs (state cleanup commands go to
 * `StateCommands`; when the tasks of an epoch start, and the triggers held
 * until then, to `EpochGate`).
 *
 * The session alone moves the worker: its welcome, restores and starts set
 * the epoch, confirm leader terms and checkpoint ids. What arrives on NATS
 * is checked against them (`ControlIntake`, `EdgeIntake`) and never moves
 * them; see the broadcasts' handling in `Broadcasts`.
 */
import { ControlIntake, DropLog } from '../bus/index.js';
import { AckBatcher } from '../worker-protocol/index.js';
import { CkptError } from '../core/errors.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import type { RestoreCommand__Output } from '../gen/ckpt/v1/RestoreCommand.js';
import type { StartCommand__Output } from '../gen/ckpt/v1/StartCommand.js';
import type { TaskHealth } from '../gen/ckpt/v1/TaskHealth.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import { Broadcasts } from './broadcasts.js';
import { DataPlane } from './data-plane.js';
import { EdgeIntake } from './edge-intake.js';
import { EpochGate } from './epoch-gate.js';
import { CREDIT_TICK_MS } from './flow-control.js';
import { jobGraph, type JobGraph } from './graph.js';
import { newTaskRunner, runtimeAckSender, subscribeRuntime, type RuntimeDeps } from './runtime-wiring.js';
import { StateCommands } from './state-commands.js';
import type { TaskRunner } from './task-runner.js';
import type { AnyTask } from './task.js';
import { TriggerTimes } from './trigger-times.js';
import { alignmentModeOf, checkWiring } from './wiring.js';

/** The leader term and highest checkpoint id a worker's session confirmed. */
export interface ConfirmedBeliefs {
  term: number;
  checkpointId: number;
}

/** The wired worker: runners, subscriptions, acknowledgements, epochs. */
export class WorkerRuntime {
  readonly #d: RuntimeDeps;
  readonly #graph: JobGraph;
  readonly #runners = new Map<string, TaskRunner>();
  /** The failures reported in the current epoch, by task: sent again in every session resumed in that epoch. */
  readonly #failures = new Map<string, string>();
  readonly #batcher: AckBatcher;
  readonly #state: StateCommands;
  readonly #drops: DropLog;
  readonly #intake: ControlIntake;
  readonly #edges: EdgeIntake;
  readonly #broadcasts: Broadcasts;
  readonly #triggerTimes = new TriggerTimes();
  readonly #gate: EpochGate;
  #unsubscribe: (() => void)[] = [];
  #plane: DataPlane | undefined;
  #creditTimer: NodeJS.Timeout | undefined;
  #commands: Promise<void> = Promise.resolve();
  #restoreAbort = new AbortController();
  #closed = false;

  private constructor(deps: RuntimeDeps, graph: JobGraph) {
    this.#d = deps;
    this.#graph = graph;
    const { config, welcome, logger } = deps;
    this.#drops = new DropLog(logger.child({ component: 'intake' }));
    this.#gate = new EpochGate({
      epoch: () => this.epoch,
      closed: () => this.#closed,
      start: (epoch) => this.#start(epoch),
      trigger: (trigger) => this.#broadcasts.trigger(trigger),
      dropped: ({ term, epoch, checkpointId }) =>
        this.#drops.drop({ kind: 'trigger', reason: 'failed', term, epoch, checkpointId }),
      logger,
    });
    this.#intake = this.#newIntake(welcome);
    this.#edges = new EdgeIntake({
      jobId: config.jobId,
      beliefs: this.#intake.beliefs,
      runners: this.#runners,
      drops: this.#drops,
      logger,
      onLost: (taskId, epoch, error) => this.#taskFailed(taskId, epoch, error),
    });
    this.#batcher = new AckBatcher({
      batchMs: config.ackBatchMs,
      expectedResults: deps.tasks.size,
      send: this.#ackSender(),
    });
    this.#state = new StateCommands({
      jobId: config.jobId,
      backend: config.state,
      send: (request) => deps.send(request),
      logger,
    });
    this.#broadcasts = new Broadcasts({
      runners: this.#runners,
      batcher: this.#batcher,
      beliefs: this.#intake.beliefs,
      triggerTimes: this.#triggerTimes,
      events: deps.events,
      drops: this.#drops,
      logger,
    });
  }

  /** The intake of the control messages, believing what `welcome` confirmed; handled by the broadcasts. */
  #newIntake(welcome: Welcome__Output): ControlIntake {
    const intake = new ControlIntake({
      jobId: this.#d.config.jobId,
      epoch: welcome.epoch,
      term: welcome.term,
      handlers: {
        trigger: (m) => this.#gate.offer(m),
        complete: (m) => this.#broadcasts.complete(m),
        abort: (m, range) => this.#broadcasts.abort(m, range),
        recover: (m) => this.#broadcasts.recover(m),
      },
      onDrop: (drop) => this.#drops.drop(drop),
    });
    intake.confirmIds({ checkpointId: welcome.latestCheckpointId, nextCheckpointId: welcome.nextCheckpointId });
    return intake;
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
    const plane = new DataPlane(
      deps.nc,
      deps.welcome.controlSubjectPrefix,
      (error, subject, msg) =>
        runtime.#drops.drop({
          kind: msg === undefined ? 'subscription' : 'record',
          reason: 'failed',
          edge: msg?.subject ?? subject,
          error,
        }),
      {
        epoch: () => runtime.epoch,
        onUnblocked: (producer) => runtime.#runners.get(producer)?.unblocked(),
        onDrop: (drop) => runtime.#drops.drop(drop),
      },
    );
    runtime.#plane = plane;
    for (const [taskId, task] of deps.tasks) runtime.#addRunner(taskId, task, plane, mode);
    await runtime.#subscribe(plane);
    runtime.#creditTimer = setInterval(() => runtime.#tickCredits(), CREDIT_TICK_MS);
    runtime.#creditTimer.unref();
    void runtime.#watchConnection();
    return runtime;
  }

  /** The epoch the worker is in (from the welcome or a restore of its session). */
  get epoch(): number {
    return this.#intake.beliefs.epoch;
  }

  /** What the session confirmed: the leader term and the highest checkpoint id. */
  get confirmed(): ConfirmedBeliefs {
    return { term: this.#intake.term, checkpointId: this.#intake.beliefs.highestConfirmed };
  }

  /** The epoch the worker's tasks have restored and run in; 0 before the first restore. */
  get runningEpoch(): number {
    return this.#gate.runningEpoch;
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

  /**
   * A welcome after a reconnect: tasks in the current epoch carry on; any
   * other epoch stops them. Its ids and term are confirmed, and control
   * messages held for that term are handled.
   */
  onResumed(welcome: Welcome__Output): void {
    if (welcome.controlSubjectPrefix !== this.#d.welcome.controlSubjectPrefix) {
      this.#d.logger.warn({ prefix: welcome.controlSubjectPrefix }, 'the coordinator names another control prefix');
    }
    if (welcome.epoch !== this.epoch) this.#enterEpoch(welcome.epoch);
    this.#intake.confirmIds({ checkpointId: welcome.latestCheckpointId, nextCheckpointId: welcome.nextCheckpointId });
    this.#intake.confirmTerm(welcome.term);
    // A failure written just before the old stream broke may never have
    // arrived, and a coordinator that took over knows nothing of it: the
    // failed task would decline every trigger and the job never recover.
    for (const [taskId, message] of this.#failures) {
      this.#d.logger.info({ taskId, epoch: this.epoch }, 'failure reported again in the resumed session');
      this.#d.send({ failure: { taskId, epoch: this.epoch, message } });
    }
  }

  /**
   * Stops gracefully: unsubscribes, lets the snapshots being stored finish,
   * sends what is batched, and closes the runners.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#creditTimer);
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#restoreAbort.abort(new CkptError('SHUTTING_DOWN', 'the worker is stopping'));
    await Promise.all([...this.#runners.values()].map((r) => r.settleUploads()));
    await this.#batcher.flushAll();
    this.#closed = true;
    this.#batcher.close();
    await Promise.all([...this.#runners.values()].map((r) => r.close()));
    await this.#state.settled();
    await this.#commands;
    this.#drops.flush();
  }

  // --- wiring ---------------------------------------------------------------

  #addRunner(taskId: string, task: AnyTask, plane: DataPlane, mode: ReturnType<typeof alignmentModeOf>): void {
    const runner = newTaskRunner(
      this.#d,
      this.#graph,
      { taskId, task, plane, mode },
      {
        triggeredAtMs: (checkpointId) => this.#triggerTimes.of(checkpointId),
        onResult: (checkpointId, epoch, result) => this.#batcher.add(checkpointId, epoch, result),
        onFailure: (failed, epoch, error) => this.#taskFailed(failed, epoch, error),
      },
    );
    this.#runners.set(taskId, runner);
    if (this.#graph.inputsOf(taskId).length === 0) this.#broadcasts.addSource(runner);
  }

  #subscribe(plane: DataPlane): Promise<void> {
    const intakes = { taskIds: this.#runners.keys(), control: this.#intake, edges: this.#edges };
    return subscribeRuntime(this.#d, this.#graph, plane, intakes, this.#unsubscribe);
  }

  #tickCredits(): void {
    if (this.#closed) return;
    const now = performance.now();
    for (const runner of this.#runners.values()) runner.tickCredits(now);
  }

  #ackSender(): ReturnType<typeof runtimeAckSender> {
    return runtimeAckSender(this.#d, this.#intake, (epoch) => epoch === this.epoch && !this.#closed);
  }

  // --- commands -------------------------------------------------------------

  async #command(message: AttachResponse__Output): Promise<void> {
    if (this.#closed) return;
    if (message.restore) await this.#restore(message.restore);
    else if (message.start) this.#onStart(message.start);
    else if (message.canceled) this.#d.events.emit('canceled', message.canceled);
    else if (message.discard) this.#state.discard(message.discard);
    else if (message.listState) this.#state.list(message.listState);
  }

  async #restore(command: RestoreCommand__Output): Promise<void> {
    const { epoch, checkpointId } = command;
    if (epoch < this.epoch) {
      this.#d.logger.debug({ epoch, current: this.epoch }, 'restore of an old epoch ignored');
      return;
    }
    this.#enterEpoch(epoch);
    this.#intake.confirmIds({ checkpointId, nextCheckpointId: command.nextCheckpointId });
    this.#intake.confirmTerm(command.term);
    const signal = this.#restoreAbort.signal;
    const byTask = new Map(command.snapshots.map((s) => [s.taskId, s]));
    const restored = await Promise.all(
      [...this.#runners.values()].map(async (runner) => {
        try {
          const snapshot = byTask.get(runner.taskId);
          await runner.restore({ epoch, checkpointId, snapshot, sourceJobId: command.sourceJobId, signal });
          return runner.taskId;
        } catch (err) {
          if (!signal.aborted && epoch === this.epoch) this.#taskFailed(runner.taskId, epoch, CkptError.from(err));
          return undefined;
        }
      }),
    );
    if (signal.aborted || epoch !== this.epoch) return;
    const taskIds = restored.filter((id): id is string => id !== undefined);
    this.#gate.restoredIn(epoch);
    this.#d.logger.info({ epoch, checkpointId, tasks: taskIds.length }, 'restored');
    this.#d.events.emit('restored', { epoch, checkpointId, taskIds });
    if (taskIds.length > 0) this.#d.send({ ready: { epoch, taskIds } });
    this.#gate.release(epoch);
  }

  #onStart(command: StartCommand__Output): void {
    this.#gate.start(command.epoch);
    if (command.epoch === this.epoch) this.#intake.confirmTerm(command.term);
  }

  /** Starts the tasks in `epoch`, once its restore is done (see `EpochGate`). */
  #start(epoch: number): void {
    for (const runner of this.#runners.values()) runner.start(epoch);
    this.#d.logger.info({ epoch }, 'started');
    this.#d.events.emit('started', { epoch });
  }

  /** Moves to `epoch`: every task stops at once and drops what it queued; a restore follows. */
  #enterEpoch(epoch: number): void {
    this.#restoreAbort.abort(new CkptError('STALE_EPOCH', `epoch ${epoch} supersedes ${this.epoch}`));
    this.#restoreAbort = new AbortController();
    this.#intake.enterEpoch(epoch);
    this.#failures.clear();
    this.#gate.entered();
    this.#batcher.discardOtherEpochs(epoch);
    this.#edges.reset();
    this.#plane?.resetFlow();
    for (const runner of this.#runners.values()) runner.halt();
  }

  #taskFailed(taskId: string, epoch: number, error: CkptError): void {
    this.#d.events.emit('failed', { taskId, epoch, error });
    if (epoch !== this.epoch || this.#closed) return;
    this.#failures.set(taskId, error.message);
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
    if (taskId === undefined || !this.#gate.restored) return;
    const message = `${what}: records and barriers in flight may be lost`;
    this.#taskFailed(taskId, this.epoch, new CkptError('UNAVAILABLE', message));
  }
}
