/**
 * The coordinator of a set of jobs: its lifecycle (start, stop) and the
 * operations the gRPC services expose. Each operation goes to the module
 * that does that job: the job registry routes a call to its job
 * (`job-registry.ts`), the job's runtime carries out the protocol
 * (`job-runtime.ts`), the worker sessions own hellos, heartbeats, hung
 * tasks and standbys (`worker-sessions.ts`), submitting, canceling and
 * restoring a job change it (`job-changes.ts`), and the queries read
 * (`job-queries.ts`).
 * Protocol decisions live in `JobTracker`.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { CheckpointInit } from '../core/checkpoint.js';
import { CkptError, type LeadershipLostError } from '../core/errors.js';
import { DEFAULT_ID_BLOCK_SIZE } from '../core/id-allocator.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import type { CheckpointStore, ControlBus, LeaderGuard } from '../core/ports.js';
import { DEFAULT_STATE_URI_SCHEMES } from '../core/snapshot-checks.js';
import type { Logger } from '../log/index.js';
import { recordAcks, recordDeclines, type AckCall, type AckResult, type DeclineCall } from './checkpoint-calls.js';
import { CheckpointEvents } from './events.js';
import { JobQueries, type CheckpointDetails } from './job-queries.js';
import { JobRegistry } from './job-registry.js';
import { JobChanges, type SubmitFrom, type Submitted } from './job-changes.js';
import type { RollBack } from './job-rollback.js';
import { LeadershipFence } from './leadership-fence.js';
import type { CoordinatorObserver } from './observer.js';
import { Savepoints } from './savepoints.js';
import { WorkerSessions } from './worker-sessions.js';
import type { StateCleanup } from './state-cleanup.js';
import {
  cleanupJob,
  createStateCleanup,
  resolveStateCleanupSettings,
  type StateCleanupSettings,
} from './state-settings.js';
import type { GarbageReport } from './state-sweeper.js';
import type { StoredPiece } from '../gen/ckpt/v1/StoredPiece.js';

/** Options of a coordinator; see `src/config` for their defaults. */
export interface CoordinatorOptions {
  store: CheckpointStore;
  bus: ControlBus;
  logger: Logger;
  /** Workers send a heartbeat this often. */
  heartbeatIntervalMs: number;
  /** A session without a heartbeat for this long is ended and its tasks detached. */
  heartbeatTimeoutMs: number;
  /** Checkpoint ids reserved per etcd write. @default 1000 */
  idBlockSize?: number;
  /** Finished checkpoints remembered per job. @default 100 */
  historySize?: number;
  /** The clock; tests may replace it. @default Date.now */
  now?: () => number;
  /**
   * The leadership this coordinator runs under: every etcd write is fenced
   * by `guard`, and every control message and command carries `term`.
   * @default undefined (no fencing, term 0: a coordinator that runs alone)
   */
  leadership?: { guard: LeaderGuard; term: number };
  /**
   * Called once when a fenced write was refused because another
   * coordinator leads now; the owner should stop this coordinator.
   */
  onLeadershipLost?: (err: LeadershipLostError) => void;
  /** What callers may make the coordinator hold. @default DEFAULT_LIMITS */
  limits?: Limits;
  /** URI schemes acknowledged state handles may use. @default ['file', 'nats-obj'] */
  stateUriSchemes?: readonly string[];
  /** A waiting standby without a heartbeat for this long is ended. @default 10000 */
  standbyTimeoutMs?: number;
  /** The cleanup of task state; see `StateCleanupSettings`. */
  stateCleanup?: StateCleanupSettings;
  /** Hears how long acknowledgements, commits and worker sessions took. @default undefined */
  observer?: CoordinatorObserver;
  /**
   * The jobs this coordinator runs, when it runs only some of those in etcd
   * (one job group of several): it loads only those. The caller sends it
   * calls of those jobs only. @default undefined (every job)
   */
  jobFilter?: (jobId: string) => boolean;
}

/** The checkpoint coordinator of a set of jobs. */
export class Coordinator {
  readonly events = new CheckpointEvents();
  private readonly stopController = new AbortController();
  private readonly options: CoordinatorOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly limits: Limits;
  private readonly fence: LeadershipFence;
  private readonly jobs: JobRegistry;
  private readonly queries: JobQueries;
  /** Taking, listing and deleting savepoints. */
  readonly savepoints: Savepoints;
  /** The worker sessions and standbys of every job. */
  readonly sessions: WorkerSessions;
  private readonly changes: JobChanges;
  private readonly cleanup: StateCleanup;
  private sweeper: NodeJS.Timeout | undefined;
  private stateSweeper: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';

  constructor(options: CoordinatorOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'coordinator' });
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.fence = new LeadershipFence(this.log, options.onLeadershipLost);
    this.cleanup = createStateCleanup(options.stateCleanup ?? {}, {
      store: options.store,
      sessionsOf: (jobId) => this.sessions.ofJob(jobId),
      findJob: (jobId) => this.jobs.find(jobId),
      term: this.term,
      now: this.now,
      log: this.log.child({ component: 'state-cleanup' }),
    });
    this.jobs = new JobRegistry({
      store: options.store,
      bus: options.bus,
      events: this.events,
      logger: options.logger,
      log: this.log,
      now: this.now,
      limits: this.limits,
      ackRules: {
        maxStateBytes: this.limits.maxStateBytes,
        maxPendingAckBytes: this.limits.maxPendingAckBytesPerJob,
        stateUriSchemes: new Set(options.stateUriSchemes ?? DEFAULT_STATE_URI_SCHEMES),
      },
      idBlockSize: options.idBlockSize ?? DEFAULT_ID_BLOCK_SIZE,
      historySize: options.historySize,
      guard: options.leadership?.guard,
      term: this.term,
      onLeadershipLost: (err: LeadershipLostError) => this.fence.lost(err),
      sessionsOf: (jobId) => this.sessions.ofJob(jobId),
      endSessions: (jobId, error) => this.sessions.endJob(jobId, error),
      running: () => this.state === 'running',
      state: this.cleanup,
      observer: options.observer,
    });
    this.queries = new JobQueries(this.jobs, options.store);
    // What savepoints and the changes of a job both work with.
    const fenced = {
      store: options.store,
      fence: this.fence,
      guard: () => options.leadership?.guard,
      now: this.now,
      log: this.log,
      requireRunning: () => this.requireRunning(),
    };
    this.savepoints = new Savepoints({
      ...fenced,
      runtime: (jobId) => this.jobs.get(jobId),
      cancel: (jobId) => this.cancelJob(jobId),
      savepointsChanged: (jobId) => this.cleanup.savepointsChanged(jobId),
    });
    this.changes = new JobChanges({
      ...fenced,
      limits: this.limits,
      jobs: this.jobs,
      savepoints: this.savepoints,
      canceled: (jobId) => {
        this.cleanup.canceled(jobId);
        this.sessions.jobCanceled(jobId);
      },
    });
    this.sessions = new WorkerSessions({
      logger: options.logger,
      now: this.now,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      standbyTimeoutMs: options.standbyTimeoutMs ?? 10_000,
      limits: this.limits,
      term: this.term,
      controlPrefix: (jobId) => options.bus.controlPrefix(jobId),
      job: (jobId) => this.jobs.get(jobId),
      findJob: (jobId) => this.jobs.find(jobId),
      requireRunning: () => this.requireRunning(),
      stopped: () => this.state === 'stopped',
      observer: options.observer,
    });
  }

  /**
   * Loads every job from etcd and starts their schedules. Checkpoints that
   * an earlier coordinator left pending are aborted by a broadcast with
   * reason COORDINATOR_RESTART.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`coordinator cannot start when ${this.state}`);
    const began = Date.now();
    this.jobs.load(await this.options.store.loadJobs(this.options.jobFilter));
    const loadedMs = Date.now() - began;
    await this.cleanup.load(this.jobs.runtimes().map(cleanupJob));
    this.state = 'running';
    await this.jobs.startAll();
    const sweepMs = Math.max(10, Math.floor(this.options.heartbeatTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sessions.sweep(), sweepMs);
    const { stateSweepIntervalMs } = resolveStateCleanupSettings(this.options.stateCleanup ?? {});
    this.stateSweeper = setInterval(() => void this.sweepState(), stateSweepIntervalMs);
    void this.sweepState();
    // How long a take-over spent reading the jobs from etcd, and in all.
    const startup = { loadMs: loadedMs, startMs: Date.now() - began };
    this.log.info(
      { jobs: this.jobs.jobCount, quarantined: this.jobs.quarantinedCount, ...startup },
      'coordinator started',
    );
  }

  /**
   * Stops timers and ends every session with `reason` (default
   * SHUTTING_DOWN); calls waiting for a checkpoint fail with UNAVAILABLE.
   * Commits in flight finish first.
   */
  async stop(reason?: CkptError): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    const error = reason ?? new CkptError('SHUTTING_DOWN', 'the coordinator is shutting down', { retryable: true });
    this.stopController.abort();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    if (this.stateSweeper !== undefined) clearInterval(this.stateSweeper);
    for (const runtime of this.jobs.runtimes()) runtime.stop(error.message);
    await this.settled();
    this.sessions.endAll(error);
    this.log.info('coordinator stopped');
  }

  /** Sweeps the state of every job this coordinator runs. */
  private sweepState(): Promise<void> {
    if (this.state !== 'running') return Promise.resolve();
    return this.cleanup.sweepAll(this.jobs.runtimes().map((r) => r.jobId));
  }

  /** Aborted when the coordinator stops; long-lived streams end on it. */
  get stopping(): AbortSignal {
    return this.stopController.signal;
  }

  /** The leader's term this coordinator runs in; 0 when it runs alone. */
  get term(): number {
    return this.options.leadership?.term ?? 0;
  }

  /** Throws TAKING_OVER before the coordinator started, SHUTTING_DOWN once it stopped (both retryable). */
  private requireRunning(): void {
    if (this.state === 'new') {
      throw new CkptError('TAKING_OVER', 'the coordinator is starting: loading its jobs', { retryable: true });
    }
    if (this.state !== 'running') {
      throw new CkptError('SHUTTING_DOWN', 'the coordinator is shutting down', { retryable: true });
    }
  }

  // --- jobs -------------------------------------------------------------------

  /** Registers a job; the same spec again is a no-op. */
  submitJob(input: JobSpec | null | undefined, from?: SubmitFrom): Promise<Submitted> {
    return this.changes.submit(input, from);
  }

  /** A job, or a quarantined one with its reason. */
  getJob(jobId: unknown): JobInfo__Output {
    return this.queries.getJob(jobId);
  }

  /** Jobs (quarantined ones too) ordered by id, after `afterJobId`. */
  listJobs(
    afterJobId: string,
    limit: number,
    visible?: (jobId: string) => boolean,
  ): { jobs: JobInfo__Output[]; more: boolean } {
    return this.queries.listJobs(afterJobId, limit, visible);
  }

  /** Cancels a job: pending checkpoints abort, workers are told. */
  cancelJob(jobId: unknown): Promise<JobInfo__Output> {
    return this.changes.cancel(jobId);
  }

  /** Restores a job to a retained checkpoint (0: the latest); see `JobChanges.restore`. */
  restoreJob(jobId: unknown, checkpointId: unknown): Promise<RollBack> {
    return this.changes.restore(jobId, checkpointId);
  }

  /** Standbys of a job waiting for their tasks. */
  waitingStandbys(jobId: string): number {
    return this.sessions.waitingStandbys(jobId);
  }

  // --- checkpoints ------------------------------------------------------------

  /** Starts a checkpoint now; with `wait`, resolves when it has finished. */
  async triggerCheckpoint(
    jobId: unknown,
    snapshotType: CheckpointInit['snapshotType'] | undefined,
    wait: boolean,
  ): Promise<CheckpointSummary__Output> {
    this.requireRunning();
    const runtime = this.jobs.get(jobId);
    const checkpoint = await this.fence.run(() => runtime.trigger(true, snapshotType));
    return wait ? runtime.waitFor(checkpoint.id) : checkpoint.summary();
  }

  /**
   * An acknowledgement call: it must carry the session token of the live
   * session of the job that runs its tasks (else PERMISSION_DENIED).
   */
  acknowledge(request: AckCall & { jobId?: unknown; sessionToken?: unknown; workerId?: unknown }): AckResult {
    this.requireRunning();
    const runtime = this.jobs.get(request.jobId);
    const session = this.sessions.sessionOfToken(request.sessionToken, runtime.jobId, request.workerId);
    return recordAcks(runtime, session.workerId, request);
  }

  /** Acknowledgements sent inside a session: for the session's job and worker. */
  acknowledgeInSession(sessionId: string, request: AckCall): AckResult {
    this.requireRunning();
    const { session, runtime } = this.sessions.sessionJob(sessionId);
    return recordAcks(runtime, session.workerId, request);
  }

  /** A decline call: the same session token rule as `acknowledge`. */
  decline(request: DeclineCall & { jobId?: unknown; sessionToken?: unknown; workerId?: unknown }): void {
    this.requireRunning();
    const runtime = this.jobs.get(request.jobId);
    const session = this.sessions.sessionOfToken(request.sessionToken, runtime.jobId, request.workerId);
    recordDeclines(runtime, session.workerId, request, this.limits.maxMessageTextBytes);
  }

  /** Declines sent inside a session: for the session's job and worker. */
  declineInSession(sessionId: string, request: DeclineCall): void {
    this.requireRunning();
    const { session, runtime } = this.sessions.sessionJob(sessionId);
    recordDeclines(runtime, session.workerId, request, this.limits.maxMessageTextBytes);
  }

  /** Pending, remembered, retained and recorded checkpoints of a job, newest first. */
  listCheckpoints(jobId: unknown): Promise<CheckpointSummary__Output[]> {
    return this.queries.listCheckpoints(jobId);
  }

  /** One checkpoint with its per-task figures, and its manifest when it is completed and retained. */
  getCheckpoint(job: unknown, id: unknown): Promise<CheckpointDetails> {
    return this.queries.getCheckpoint(job, id);
  }

  /** A job's checkpoint statistics: counts, figures, latest, history. */
  checkpointStatistics(jobId: unknown): CheckpointStatistics__Output {
    return this.queries.checkpointStatistics(jobId);
  }

  // --- state ------------------------------------------------------------------

  /**
   * Sweeps one job's state now: deletes (with `dryRun`, only lists) what no
   * retained checkpoint or savepoint names; see `StateCleanup`.
   */
  async collectGarbage(jobId: unknown, dryRun: boolean): Promise<GarbageReport> {
    this.requireRunning();
    const runtime = this.jobs.get(jobId);
    return this.cleanup.collect(runtime.jobId, dryRun);
  }

  /** A worker's listing of its state pieces: what is garbage goes back to it in discard commands. */
  stateListing(sessionId: string, pieces: readonly StoredPiece[]): void {
    this.requireRunning();
    const { session } = this.sessions.sessionJob(sessionId);
    this.cleanup.listing(session, pieces);
  }

  /** Waits for every job's commits in flight (tests and shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.jobs.runtimes().map((r) => r.settled()));
  }
}
