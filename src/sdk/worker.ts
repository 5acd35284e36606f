/**
 * The worker of the SDK: runs a job's tasks in one process, holds the
 * session with the coordinator, and takes part in checkpoints and
 * recoveries on the user's behalf.
 *
 * ```ts
 * const worker = createWorker({ coordinator, nats, jobId, state });
 * worker.addTask('count', { process: (record, ctx) => { … } });
 * await worker.start();
 * …
 * await worker.stop();
 * ```
 */
import { EventEmitter } from 'node:events';
import type { NatsConnection } from '@nats-io/nats-core';
// The bus's own modules, not its barrel: the barrel brings the coordinator's side of NATS too.
import { connectNats } from '../bus/connect.js';
import { assertSubjectToken } from '../bus/subjects.js';
import { createCoordinatorClient, type CoordinatorClient } from '../client/index.js';
import { CkptError } from '../core/errors.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import type { Logger } from '../log/index.js';
import type { WorkerEventMap } from './events.js';
import { resolveWorkerOptions, type WorkerConfig, type WorkerOptions } from './options.js';
import { WorkerSession } from '../worker-protocol/index.js';
import type { AnyTask, SourceTask, Task } from './task.js';
import { waitForEvent, type WaitOptions } from './wait.js';
import type { WorkerMetrics } from './worker-metrics.js';
import { WorkerRuntime, type ConfirmedBeliefs } from './worker-runtime.js';

/** Lifecycle of a worker. */
export type WorkerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** A worker running tasks of one job. Emits the events of `WorkerEventMap`. */
export class Worker extends EventEmitter<WorkerEventMap> {
  /** The worker's id, as sent in its hello. */
  readonly workerId: string;
  /** The job its tasks belong to. */
  readonly jobId: string;
  readonly #config: WorkerConfig;
  readonly #logger: Logger;
  readonly #tasks = new Map<string, AnyTask>();
  readonly #lifetime = new AbortController();
  readonly #early: AttachResponse__Output[] = [];
  #state: WorkerState = 'new';
  #nc: NatsConnection | undefined;
  #client: CoordinatorClient | undefined;
  #session: WorkerSession | undefined;
  #runtime: WorkerRuntime | undefined;
  #metrics: WorkerMetrics | undefined;
  #welcome: Welcome__Output | undefined;
  #stopping: Promise<void> | undefined;

  /** Validates the options; throws `CkptError('MALFORMED')` naming a bad one. Nothing connects before `start()`. */
  constructor(options: WorkerOptions) {
    super();
    this.#config = resolveWorkerOptions(options);
    this.workerId = this.#config.workerId;
    this.jobId = this.#config.jobId;
    this.#logger = this.#config.logger.child({ component: 'worker', jobId: this.jobId, workerId: this.workerId });
  }

  /** `new`, `starting`, `running`, `stopping` or `stopped`. */
  get state(): WorkerState {
    return this.#state;
  }

  /** The job's epoch as the worker's session set it; 0 before the welcome. */
  get epoch(): number {
    return this.#runtime?.epoch ?? 0;
  }

  /**
   * What the worker's session confirmed (NATS messages never raise it): the
   * leader term and the highest checkpoint id; zeros before the welcome.
   */
  get confirmed(): ConfirmedBeliefs {
    return this.#runtime?.confirmed ?? { term: 0, checkpointId: 0 };
  }

  /** The welcome of the current session. */
  get welcome(): Welcome__Output | undefined {
    return this.#welcome;
  }

  /** Where the worker serves `GET /metrics` (host:port, the port bound) once started with `metrics.listen`. */
  get metricsAddress(): string | undefined {
    return this.#metrics?.address;
  }

  /** The local task ids, in the order added. */
  get taskIds(): string[] {
    return [...this.#tasks.keys()];
  }

  /**
   * Adds a task before `start()`. A `SourceTask` must be a task without
   * inputs in the job spec. Throws `CkptError('MALFORMED')` after start or
   * for an id given twice.
   */
  addTask(taskId: string, task: Task | SourceTask<unknown>): this {
    if (this.#state !== 'new') throw new CkptError('MALFORMED', `addTask(${taskId}) after start()`, { taskId });
    assertSubjectToken(taskId, 'task id');
    if (this.#tasks.has(taskId)) throw new CkptError('MALFORMED', `task ${taskId} is added twice`, { taskId });
    this.#tasks.set(taskId, task);
    return this;
  }

  /**
   * Connects to NATS and the coordinator, opens the session, wires the tasks
   * to the job graph from the welcome and subscribes. Resolves once the
   * worker is attached; the tasks run after the coordinator's restore and
   * start. Rejects with a `CkptError` (the coordinator's refusal, an
   * unsupported mode, tasks that do not fit the graph, a metrics address
   * that cannot be bound); nothing stays open then.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new CkptError('MALFORMED', `start() when the worker is ${this.#state}`);
    if (this.#tasks.size === 0) throw new CkptError('MALFORMED', 'add at least one task before start()');
    this.#state = 'starting';
    // NATS and the session are opened side by side: a restart reaches its restore sooner.
    const connecting = connectNats(this.#config.nats, `ckpt-worker-${this.workerId}`, {
      logger: this.#logger,
      auth: this.#config.natsAuth,
    });
    try {
      this.#metrics = await this.#startMetrics();
      const { token, maxMessageBytes, tls } = this.#config;
      this.#client = createCoordinatorClient(this.#config.coordinator, {
        maxMessageBytes,
        ...(token === undefined ? {} : { token }),
        ...(tls === undefined ? {} : { tls }),
      });
      this.#session = this.#newSession(this.#client);
      const [nc, welcome] = await Promise.all([connecting, this.#session.open(this.#config.startTimeoutMs)]);
      this.#nc = nc;
      this.#runtime = await this.#newRuntime(welcome, nc, this.#client, this.#session);
    } catch (err) {
      this.#nc ??= await connecting.catch(() => undefined);
      await this.#teardown();
      this.#state = 'stopped';
      throw CkptError.from(err);
    }
    this.#state = 'running';
    this.#logger.info({ epoch: this.#runtime.epoch, tasks: this.#tasks.size }, 'attached');
    for (const message of this.#early.splice(0)) this.#runtime.onCommand(message);
    this.#config.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    if (this.#config.signal?.aborted === true) void this.stop();
  }

  /**
   * Stops gracefully: snapshots being stored finish and batched
   * acknowledgements are sent, the session ends, NATS is drained, the client
   * closed. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /**
   * Resolves with the arguments of the next `name` event that `match`
   * accepts (default: any). Rejects on timeout (default 30 s), and when the
   * worker stops first.
   */
  waitFor<K extends keyof WorkerEventMap>(
    name: K,
    match?: (...args: WorkerEventMap[K]) => boolean,
    options: WaitOptions = {},
  ): Promise<WorkerEventMap[K]> {
    // Waits end when the worker stops, except a wait for 'stopped' itself.
    const lifetime = name === 'stopped' ? [] : [this.#lifetime.signal];
    const signals = [...lifetime, ...(options.signal === undefined ? [] : [options.signal])];
    return waitForEvent(this, name, match, { ...options, signal: AbortSignal.any(signals) });
  }

  async #stop(error?: CkptError): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    try {
      await this.#runtime?.close();
    } catch (err) {
      this.#logger.warn({ err }, 'tasks did not close cleanly');
    }
    await this.#teardown();
    this.#state = 'stopped';
    this.#logger.info('stopped');
    this.emit('stopped', error === undefined ? {} : { error });
  }

  async #teardown(): Promise<void> {
    this.#lifetime.abort(new CkptError('SHUTTING_DOWN', 'the worker stopped'));
    await this.#session?.close().catch(() => {});
    await this.#runtime?.close().catch(() => {});
    const nc = this.#nc;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    this.#client?.close();
    await this.#metrics?.close();
  }

  /** prom-client is loaded only for a worker with metrics: it costs every other worker's start tens of ms. */
  async #startMetrics(): Promise<WorkerMetrics | undefined> {
    const { metrics } = this.#config;
    if (metrics === undefined) return undefined;
    const { WorkerMetrics } = await import('./worker-metrics.js');
    const deps = { jobId: this.jobId, taskIds: [...this.#tasks.keys()], events: this, logger: this.#logger };
    return WorkerMetrics.start(metrics, deps);
  }

  #newSession(client: CoordinatorClient): WorkerSession {
    return new WorkerSession({
      client,
      jobId: this.jobId,
      workerId: this.workerId,
      taskIds: [...this.#tasks.keys()],
      labels: this.#config.labels,
      standby: this.#config.standby,
      attachTimeoutMs: this.#config.attachTimeoutMs,
      backoff: this.#config.reconnect,
      logger: this.#logger,
      handlers: {
        helloEpoch: () => this.#runtime?.runningEpoch ?? 0,
        taskHealth: () => this.#runtime?.taskHealth() ?? [],
        onWelcome: (welcome, resumed) => {
          this.#welcome = welcome;
          if (resumed) this.#runtime?.onResumed(welcome);
          this.emit('welcome', welcome);
        },
        onCommand: (message) => {
          if (this.#runtime === undefined) this.#early.push(message);
          else this.#runtime.onCommand(message);
        },
        onLost: (error) => this.emit('session-lost', { error }),
        onFatal: (error) => {
          this.#logger.error({ err: error }, 'the coordinator refused the session; stopping');
          this.#stopping ??= this.#stop(error);
        },
      },
    });
  }

  #newRuntime(
    welcome: Welcome__Output,
    nc: NatsConnection,
    client: CoordinatorClient,
    session: WorkerSession,
  ): Promise<WorkerRuntime> {
    const onCanceled = (): void => {
      this.#logger.info('job canceled; stopping');
      void this.stop();
    };
    this.once('canceled', onCanceled);
    return WorkerRuntime.create({
      config: this.#config,
      welcome,
      tasks: this.#tasks,
      nc,
      client,
      events: this,
      send: (request) => session.send(request),
      session,
      metrics: this.#metrics,
      signal: this.#lifetime.signal,
      logger: this.#logger,
    });
  }
}

/** Creates a worker; same as `new Worker(options)`. */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker(options);
}
