/**
 * The coordinator: the registry of jobs and worker sessions, and the
 * operations the gRPC services expose. Protocol decisions live in
 * `JobTracker`; this class loads state from etcd, routes calls to the
 * right job, and owns the session heartbeats.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { TaskDecline } from '../gen/ckpt/v1/TaskDecline.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { isDeepStrictEqual } from 'node:util';
import type { CheckpointInit } from '../core/checkpoint.js';
import { CkptError, LeadershipLostError } from '../core/errors.js';
import { DEFAULT_ID_BLOCK_SIZE } from '../core/id-allocator.js';
import type { AckRules } from '../core/ack-rules.js';
import { JobTracker } from '../core/job-tracker.js';
import { checkCount, DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import type { CheckpointStore, ControlBus, LeaderGuard, QuarantinedJob, StoredJobState } from '../core/ports.js';
import { checkCheckpointRef, checkDeclines } from '../core/request-checks.js';
import { DEFAULT_STATE_URI_SCHEMES } from '../core/snapshot-checks.js';
import { checkId, validateJobSpec } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import { CheckpointEvents } from './events.js';
import { JobRuntime } from './job-runtime.js';
import type { RollBack } from './job-rollback.js';
import { WorkerSessions } from './worker-sessions.js';

const ATTEMPT_ON_WIRE = {
  resuming: 'JOB_ATTEMPT_RESUMING',
  restoring: 'JOB_ATTEMPT_RESTORING',
  running: 'JOB_ATTEMPT_RUNNING',
} as const;

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
}

/** An acknowledgement of one checkpoint by one worker, as received. */
export interface AckCall {
  epoch?: unknown;
  checkpointId?: unknown;
  snapshots?: TaskSnapshot__Output[];
}

/** A decline of one checkpoint by one worker, as received. */
export interface DeclineCall {
  epoch?: unknown;
  checkpointId?: unknown;
  declines?: TaskDecline[];
}

/** What an accepted acknowledgement reports. */
export interface AckResult {
  acknowledgedTasks: number;
  totalTasks: number;
  duplicates: number;
}

/** A quarantined job as `GetJob` and `ListJobs` show it. */
function quarantinedInfo(jobId: string, reason: string): JobInfo__Output {
  return {
    spec: { jobId, tasks: [], policy: null, labels: {} },
    state: 'JOB_STATE_QUARANTINED',
    epoch: 0,
    latestCheckpointId: 0,
    checkpointing: 'JOB_CHECKPOINTING_UNSPECIFIED',
    attachedTasks: 0,
    createdAtMs: 0,
    readyTasks: 0,
    attempt: 'JOB_ATTEMPT_UNSPECIFIED',
    restorePoint: null,
    quarantineReason: reason,
  };
}

/** The checkpoint coordinator of a set of jobs. */
export class Coordinator {
  readonly events = new CheckpointEvents();
  private readonly stopController = new AbortController();
  private readonly options: CoordinatorOptions;
  private readonly log: Logger;
  private readonly jobs = new Map<string, JobRuntime>();
  /** Jobs whose records in etcd are unreadable or invalid, with the reason. */
  private readonly quarantined = new Map<string, string>();
  private readonly now: () => number;
  private readonly limits: Limits;
  private readonly ackRules: AckRules;
  /** The worker sessions and standbys of every job. */
  readonly sessions: WorkerSessions;
  private sweeper: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private leadershipLost = false;

  constructor(options: CoordinatorOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'coordinator' });
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_LIMITS;
    this.ackRules = {
      maxStateBytes: this.limits.maxStateBytes,
      maxPendingAckBytes: this.limits.maxPendingAckBytesPerJob,
      stateUriSchemes: new Set(options.stateUriSchemes ?? DEFAULT_STATE_URI_SCHEMES),
    };
    this.sessions = new WorkerSessions({
      logger: options.logger,
      now: this.now,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      standbyTimeoutMs: options.standbyTimeoutMs ?? 10_000,
      limits: this.limits,
      term: this.term,
      controlPrefix: (jobId) => options.bus.controlPrefix(jobId),
      job: (jobId) => this.job(jobId),
      findJob: (jobId) => this.jobs.get(jobId),
      requireRunning: () => this.requireRunning(),
      stopped: () => this.state === 'stopped',
    });
  }

  /**
   * Loads every job from etcd and starts their schedules. Checkpoints that
   * an earlier coordinator left pending are aborted by a broadcast with
   * reason COORDINATOR_RESTART.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`coordinator cannot start when ${this.state}`);
    const stored = await this.options.store.loadJobs();
    for (const job of stored.jobs) this.loadJob(job);
    for (const { jobId, reason } of stored.quarantined) this.quarantine({ jobId, reason });
    this.state = 'running';
    for (const runtime of this.jobs.values()) {
      runtime.start();
      await this.abortLeftovers(runtime);
    }
    const sweepMs = Math.max(10, Math.floor(this.options.heartbeatTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sessions.sweep(), sweepMs);
    this.log.info({ jobs: this.jobs.size, quarantined: this.quarantined.size }, 'coordinator started');
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
    for (const runtime of this.jobs.values()) runtime.stop(error.message);
    await Promise.all([...this.jobs.values()].map((r) => r.settled()));
    this.sessions.endAll(error);
    this.log.info('coordinator stopped');
  }

  /** Aborted when the coordinator stops; long-lived streams end on it. */
  get stopping(): AbortSignal {
    return this.stopController.signal;
  }

  /**
   * A job read from etcd. Its spec was valid for the coordinator that
   * stored it; one past this coordinator's limits is quarantined.
   */
  private loadJob(job: StoredJobState): void {
    try {
      validateJobSpec(job.spec, this.limits);
    } catch (err) {
      const why = `its stored spec is outside this coordinator's limits: ${CkptError.from(err).message}`;
      this.quarantine({ jobId: job.spec.jobId, reason: why });
      return;
    }
    try {
      this.addJob(job, 'resuming');
    } catch (err) {
      // The store checks what it loads; whatever still cannot run is one job's problem, not every job's.
      this.jobs.delete(job.spec.jobId);
      this.quarantine({ jobId: job.spec.jobId, reason: `its stored state cannot run: ${CkptError.from(err).message}` });
    }
  }

  /** Serves a job as quarantined: listed with its reason, its calls refused. */
  private quarantine({ jobId, reason }: QuarantinedJob): void {
    this.quarantined.set(jobId, reason);
    this.log.error({ jobId, reason }, 'job quarantined: its records in etcd are unreadable or invalid');
  }

  /**
   * A running job whose stored state turned out unusable (a corrupt
   * manifest to restore from): it stops, its sessions and standbys end with
   * JOB_QUARANTINED, and it is served as quarantined. Repairing its records
   * and a new leadership load it again.
   */
  private quarantineRunning(jobId: string, why: string): void {
    const runtime = this.jobs.get(jobId);
    if (runtime === undefined || this.state !== 'running') return;
    this.jobs.delete(jobId);
    runtime.stop(why);
    this.quarantine({ jobId, reason: why });
    this.sessions.endJob(jobId, new CkptError('JOB_QUARANTINED', `job ${jobId} is quarantined: ${why}`, { jobId }));
  }

  private addJob(job: StoredJobState, attempt: 'resuming' | 'restoring'): JobRuntime {
    const tracker = new JobTracker({
      ...job,
      historySize: this.options.historySize,
      attempt,
      ackRules: this.ackRules,
    });
    const runtime = new JobRuntime(tracker, {
      store: this.options.store,
      bus: this.options.bus,
      events: this.events,
      logger: this.options.logger,
      now: this.now,
      idBlockSize: this.options.idBlockSize ?? DEFAULT_ID_BLOCK_SIZE,
      sessions: () => this.sessions.ofJob(job.spec.jobId),
      guard: this.options.leadership?.guard,
      term: this.term,
      onLeadershipLost: (err) => this.lostLeadership(err),
      onQuarantine: (why) => this.quarantineRunning(job.spec.jobId, why),
    });
    this.jobs.set(job.spec.jobId, runtime);
    return runtime;
  }

  private async abortLeftovers(runtime: JobRuntime): Promise<void> {
    const { tracker } = runtime;
    const from = tracker.latestCheckpointId + 1;
    const below = tracker.ids.nextId;
    if (tracker.state !== 'JOB_STATE_RUNNING' || from >= below) return;
    // Ids in [from, below) may have been triggered by the previous coordinator.
    await this.options.bus
      .publishAbort({
        jobId: tracker.jobId,
        checkpointId: below - 1,
        epoch: tracker.epoch,
        reason: 'ABORT_REASON_COORDINATOR_RESTART',
        message: `every checkpoint from ${from} to ${below - 1} that was pending`,
        term: this.term,
      })
      .catch((err: unknown) => this.log.warn({ err, jobId: tracker.jobId }, 'restart abort not broadcast'));
  }

  /** The leader's term this coordinator runs in; 0 when it runs alone. */
  get term(): number {
    return this.options.leadership?.term ?? 0;
  }

  private lostLeadership(err: LeadershipLostError): void {
    if (this.leadershipLost) return;
    this.leadershipLost = true;
    this.log.warn({ err }, 'a fenced etcd write was refused: another coordinator leads');
    this.options.onLeadershipLost?.(err);
  }

  /** Runs a write; a refused fence reports the lost leadership and becomes NOT_LEADER for the caller. */
  private async fenced<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (!(err instanceof LeadershipLostError)) throw err;
      this.lostLeadership(err);
      throw new CkptError('NOT_LEADER', 'this coordinator is no longer the leader', { cause: err, retryable: true });
    }
  }

  private requireRunning(): void {
    if (this.state !== 'running')
      throw new CkptError(
        'SHUTTING_DOWN',
        `the coordinator is ${this.state === 'new' ? 'starting' : 'shutting down'}`,
        { retryable: true },
      );
  }

  /** The job's runtime; throws MALFORMED, UNKNOWN_JOB or JOB_QUARANTINED. */
  private job(jobId: unknown): JobRuntime {
    const id = checkId(jobId, 'job_id');
    const runtime = this.jobs.get(id);
    if (runtime !== undefined) return runtime;
    const quarantined = this.quarantined.get(id);
    if (quarantined !== undefined) {
      throw new CkptError('JOB_QUARANTINED', `job ${id} is quarantined: ${quarantined}`, { jobId: id });
    }
    throw new CkptError('UNKNOWN_JOB', `no job ${id}`, { jobId: id });
  }

  // --- jobs -------------------------------------------------------------------

  /** Registers a job; the same spec again is a no-op. */
  async submitJob(input: JobSpec | null | undefined): Promise<{ job: JobInfo__Output; created: boolean }> {
    this.requireRunning();
    const spec = validateJobSpec(input, this.limits);
    const existing = this.jobs.get(spec.jobId);
    if (existing !== undefined) {
      if (isDeepStrictEqual(existing.tracker.spec, spec)) return { job: this.jobInfo(existing), created: false };
      throw new CkptError('JOB_EXISTS', `job ${spec.jobId} exists with another spec`, { jobId: spec.jobId });
    }
    if (this.quarantined.has(spec.jobId)) this.job(spec.jobId);
    const held = this.jobs.size + this.quarantined.size;
    if (held >= this.limits.maxJobs) {
      throw new CkptError('LIMIT_REACHED', `the coordinator holds ${held} jobs, its limit`, { jobId: spec.jobId });
    }
    const guard = this.options.leadership?.guard;
    const { job, created } = await this.fenced(() => this.options.store.createJob(spec, this.now(), guard));
    if (!created && !isDeepStrictEqual(job.spec, spec)) {
      throw new CkptError('JOB_EXISTS', `job ${spec.jobId} exists with another spec`, { jobId: spec.jobId });
    }
    const runtime = this.jobs.get(spec.jobId) ?? this.addJob(job, created ? 'restoring' : 'resuming');
    runtime.start();
    this.log.info({ jobId: spec.jobId, tasks: spec.tasks.length, created }, 'job submitted');
    return { job: this.jobInfo(runtime), created };
  }

  /** A job, or a quarantined one with its reason. */
  getJob(jobId: unknown): JobInfo__Output {
    const id = checkId(jobId, 'job_id');
    const quarantined = this.quarantined.get(id);
    if (quarantined !== undefined) return quarantinedInfo(id, quarantined);
    return this.jobInfo(this.job(id));
  }

  /** Jobs (quarantined ones too) ordered by id, after `afterJobId`. */
  listJobs(afterJobId: string, limit: number): { jobs: JobInfo__Output[]; more: boolean } {
    const ids = [...this.jobs.keys(), ...this.quarantined.keys()].filter((id) => id > afterJobId).sort();
    return { jobs: ids.slice(0, limit).map((id) => this.getJob(id)), more: ids.length > limit };
  }

  /** Cancels a job: pending checkpoints abort, workers are told. */
  async cancelJob(jobId: unknown): Promise<JobInfo__Output> {
    this.requireRunning();
    const runtime = this.job(jobId);
    if (runtime.tracker.state !== 'JOB_STATE_CANCELED') {
      const guard = this.options.leadership?.guard;
      await this.fenced(() =>
        this.options.store.updateJob(runtime.jobId, runtime.tracker.spec, 'JOB_STATE_CANCELED', guard),
      );
      runtime.tracker.cancel();
      runtime.abortAll('ABORT_REASON_JOB_CANCELED', `job ${runtime.jobId} was canceled`);
      runtime.stop();
      this.sessions.jobCanceled(runtime.jobId);
      this.log.info({ jobId: runtime.jobId }, 'job canceled');
    }
    return this.jobInfo(runtime);
  }

  /**
   * Restores a job to a retained checkpoint (0: the latest): pending
   * checkpoints abort, the epoch rises with the checkpoint stored as the
   * restore point, and every task restores from it. A refused call changes
   * nothing.
   */
  async restoreJob(jobId: unknown, checkpointId: unknown): Promise<RollBack> {
    this.requireRunning();
    const runtime = this.job(jobId);
    const id = checkCount(checkpointId ?? 0, 'checkpoint_id', Number.MAX_SAFE_INTEGER, { jobId: runtime.jobId });
    const restored = await this.fenced(() => runtime.restore(id));
    this.log.info({ jobId: runtime.jobId, ...restored }, 'job restored to a checkpoint');
    return restored;
  }

  private jobInfo(runtime: JobRuntime): JobInfo__Output {
    const t = runtime.tracker;
    return {
      spec: t.spec,
      state: t.state,
      epoch: t.epoch,
      latestCheckpointId: t.latestCheckpointId,
      checkpointing: t.checkpointing,
      attachedTasks: t.attachedTasks,
      createdAtMs: t.createdAtMs,
      readyTasks: t.readyTasks,
      attempt: ATTEMPT_ON_WIRE[t.attempt],
      restorePoint: t.restorePoint ?? null,
      quarantineReason: '',
    };
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
    const runtime = this.job(jobId);
    const checkpoint = await this.fenced(() => runtime.trigger(true, snapshotType));
    return wait ? runtime.waitFor(checkpoint.id) : checkpoint.summary();
  }

  /**
   * An acknowledgement call: it must carry the session token of the live
   * session of the job that runs its tasks (else PERMISSION_DENIED).
   */
  acknowledge(request: AckCall & { jobId?: unknown; sessionToken?: unknown; workerId?: unknown }): AckResult {
    this.requireRunning();
    const runtime = this.job(request.jobId);
    const session = this.sessions.sessionOfToken(request.sessionToken, runtime.jobId, request.workerId);
    return this.recordAcks(runtime, session.workerId, request);
  }

  /** Acknowledgements sent inside a session: for the session's job and worker. */
  acknowledgeInSession(sessionId: string, request: AckCall): AckResult {
    this.requireRunning();
    const { session, runtime } = this.sessions.sessionJob(sessionId);
    return this.recordAcks(runtime, session.workerId, request);
  }

  private recordAcks(runtime: JobRuntime, workerId: string, request: AckCall): AckResult {
    const ids = { jobId: runtime.jobId };
    const ref = checkCheckpointRef(request, ids);
    const snapshots = request.snapshots ?? [];
    if (snapshots.length === 0) throw new CkptError('MALFORMED', 'snapshots is empty', ids);
    if (snapshots.length > runtime.tracker.spec.tasks.length) {
      throw new CkptError('OVERSIZED', `snapshots has more entries than the job has tasks`, ids);
    }
    const { checkpoint, duplicates } = runtime.acknowledge({ ...ref, workerId }, snapshots);
    return { acknowledgedTasks: checkpoint.acknowledgedTasks, totalTasks: checkpoint.init.taskIds.length, duplicates };
  }

  /** A decline call: the same session token rule as `acknowledge`. */
  decline(request: DeclineCall & { jobId?: unknown; sessionToken?: unknown; workerId?: unknown }): void {
    this.requireRunning();
    const runtime = this.job(request.jobId);
    const session = this.sessions.sessionOfToken(request.sessionToken, runtime.jobId, request.workerId);
    this.recordDeclines(runtime, session.workerId, request);
  }

  /** Declines sent inside a session: for the session's job and worker. */
  declineInSession(sessionId: string, request: DeclineCall): void {
    this.requireRunning();
    const { session, runtime } = this.sessions.sessionJob(sessionId);
    this.recordDeclines(runtime, session.workerId, request);
  }

  /** Records declines: the checkpoint aborts with reason DECLINED. */
  private recordDeclines(runtime: JobRuntime, workerId: string, request: DeclineCall): void {
    const ids = { jobId: runtime.jobId };
    const ref = checkCheckpointRef(request, ids);
    const declines = checkDeclines(
      request.declines ?? [],
      runtime.tracker.spec.tasks.length,
      this.limits.maxMessageTextBytes,
      ids,
    );
    runtime.decline({ ...ref, workerId }, declines);
  }

  /** Pending, remembered and retained checkpoints of a job, newest first. */
  async listCheckpoints(jobId: unknown): Promise<CheckpointSummary__Output[]> {
    const runtime = this.job(jobId);
    const inMemory = runtime.tracker.known().map((c) => c.summary());
    const stored = await this.options.store.listSummaries(runtime.jobId);
    const byId = new Map<number, CheckpointSummary__Output>();
    for (const s of stored) byId.set(s.checkpointId, s);
    for (const s of inMemory)
      if (!byId.has(s.checkpointId) || s.state !== 'CHECKPOINT_STATE_COMPLETED') byId.set(s.checkpointId, s);
    return [...byId.values()].sort((a, b) => b.checkpointId - a.checkpointId);
  }

  /** One checkpoint, with its manifest when it is completed and retained. */
  async getCheckpoint(
    job: unknown,
    id: unknown,
  ): Promise<{ summary: CheckpointSummary__Output; manifest?: Manifest__Output }> {
    const runtime = this.job(job);
    const jobId = runtime.jobId;
    const checkpointId = checkCount(id ?? 0, 'checkpoint_id', Number.MAX_SAFE_INTEGER, { jobId });
    const manifest = await this.options.store.readManifest(jobId, checkpointId);
    const known = runtime.tracker.find(checkpointId)?.summary();
    const summary =
      known ??
      (manifest === undefined
        ? undefined
        : (await this.options.store.listSummaries(jobId)).find((s) => s.checkpointId === checkpointId));
    if (summary === undefined)
      throw new CkptError(
        'UNKNOWN_CHECKPOINT',
        `job ${jobId} has no checkpoint ${checkpointId} that is pending, remembered or retained`,
        { jobId, checkpointId },
      );
    return manifest === undefined ? { summary } : { summary, manifest };
  }

  /** Waits for every job's commits in flight (tests and shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.jobs.values()].map((r) => r.settled()));
  }
}
