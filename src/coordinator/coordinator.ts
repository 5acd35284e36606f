/**
 * The coordinator: the registry of jobs and worker sessions, and the
 * operations the gRPC services expose. Protocol decisions live in
 * `JobTracker`; this class loads state from etcd, routes calls to the
 * right job, and owns the session heartbeats.
 */
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { TaskHealth__Output } from '../gen/ckpt/v1/TaskHealth.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { WorkerHello__Output } from '../gen/ckpt/v1/WorkerHello.js';
import { isDeepStrictEqual } from 'node:util';
import type { CheckpointInit } from '../core/checkpoint.js';
import { CkptError, LeadershipLostError } from '../core/errors.js';
import { DEFAULT_ID_BLOCK_SIZE } from '../core/id-allocator.js';
import { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore, ControlBus, LeaderGuard, StoredJobState } from '../core/ports.js';
import { hungReason, silentTask } from '../core/task-health.js';
import { checkId, validateJobSpec } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import { CheckpointEvents } from './events.js';
import { JobRuntime, type RollBack } from './job-runtime.js';
import { StandbyRegistry } from './standbys.js';
import { SessionRegistry, type Session, type SessionChannel } from './sessions.js';

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
}

/** The checkpoint coordinator of a set of jobs. */
export class Coordinator {
  readonly events = new CheckpointEvents();
  private readonly stopController = new AbortController();
  private readonly options: CoordinatorOptions;
  private readonly log: Logger;
  private readonly jobs = new Map<string, JobRuntime>();
  private readonly sessions = new SessionRegistry();
  private readonly standbys = new StandbyRegistry();
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private leadershipLost = false;

  constructor(options: CoordinatorOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'coordinator' });
    this.now = options.now ?? Date.now;
  }

  /**
   * Loads every job from etcd and starts their schedules. Checkpoints that
   * an earlier coordinator left pending are aborted by a broadcast with
   * reason COORDINATOR_RESTART.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`coordinator cannot start when ${this.state}`);
    const stored = await this.options.store.loadJobs();
    for (const job of stored.jobs) this.addJob(job, 'resuming');
    this.state = 'running';
    for (const runtime of this.jobs.values()) {
      runtime.start();
      await this.abortLeftovers(runtime);
    }
    const sweepMs = Math.max(10, Math.floor(this.options.heartbeatTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweepSessions(), sweepMs);
    this.log.info({ jobs: this.jobs.size }, 'coordinator started');
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
    for (const session of this.sessions.all()) {
      this.sessions.remove(session.sessionId);
      session.channel.end(error);
    }
    this.standbys.endAll(error);
    this.log.info('coordinator stopped');
  }

  /** Aborted when the coordinator stops; long-lived streams end on it. */
  get stopping(): AbortSignal {
    return this.stopController.signal;
  }

  private addJob(job: StoredJobState, attempt: 'resuming' | 'restoring'): JobRuntime {
    const tracker = new JobTracker({ ...job, historySize: this.options.historySize, attempt });
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

  /** The job's runtime; throws UNKNOWN_JOB. */
  private job(jobId: string): JobRuntime {
    checkId(jobId, 'job_id');
    const runtime = this.jobs.get(jobId);
    if (runtime === undefined) throw new CkptError('UNKNOWN_JOB', `no job ${jobId}`, { jobId });
    return runtime;
  }

  // --- jobs -------------------------------------------------------------------

  /** Registers a job; the same spec again is a no-op. */
  async submitJob(input: JobSpec | null | undefined): Promise<{ job: JobInfo__Output; created: boolean }> {
    this.requireRunning();
    const spec = validateJobSpec(input);
    const existing = this.jobs.get(spec.jobId);
    if (existing !== undefined) {
      if (isDeepStrictEqual(existing.tracker.spec, spec)) return { job: this.jobInfo(existing), created: false };
      throw new CkptError('JOB_EXISTS', `job ${spec.jobId} exists with another spec`, { jobId: spec.jobId });
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

  getJob(jobId: string): JobInfo__Output {
    return this.jobInfo(this.job(jobId));
  }

  /** Jobs ordered by id, after `afterJobId`. */
  listJobs(afterJobId: string, limit: number): { jobs: JobInfo__Output[]; more: boolean } {
    const ids = [...this.jobs.keys()].filter((id) => id > afterJobId).sort();
    return { jobs: ids.slice(0, limit).map((id) => this.getJob(id)), more: ids.length > limit };
  }

  /** Cancels a job: pending checkpoints abort, workers are told. */
  async cancelJob(jobId: string): Promise<JobInfo__Output> {
    this.requireRunning();
    const runtime = this.job(jobId);
    if (runtime.tracker.state !== 'JOB_STATE_CANCELED') {
      const guard = this.options.leadership?.guard;
      await this.fenced(() => this.options.store.updateJob(jobId, runtime.tracker.spec, 'JOB_STATE_CANCELED', guard));
      runtime.tracker.cancel();
      runtime.abortAll('ABORT_REASON_JOB_CANCELED', `job ${jobId} was canceled`);
      runtime.stop();
      for (const s of this.sessions.ofJob(jobId)) s.channel.send({ canceled: { jobId } });
      this.standbys.endAll(new CkptError('JOB_CANCELED', `job ${jobId} was canceled`, { jobId }), jobId);
      this.log.info({ jobId }, 'job canceled');
    }
    return this.jobInfo(runtime);
  }

  /**
   * Restores a job to a retained checkpoint (0: the latest): pending
   * checkpoints abort, the epoch rises with the checkpoint stored as the
   * restore point, and every task restores from it. A refused call changes
   * nothing.
   */
  async restoreJob(jobId: string, checkpointId: number): Promise<RollBack> {
    this.requireRunning();
    const runtime = this.job(jobId);
    const restored = await this.fenced(() => runtime.restore(checkpointId));
    this.log.info({ jobId, ...restored }, 'job restored to a checkpoint');
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

  // --- sessions ---------------------------------------------------------------

  /** Opens a worker session from its hello; the welcome is sent on the channel. */
  openSession(hello: WorkerHello__Output, channel: SessionChannel): Session {
    this.requireRunning();
    const workerId = hello.workerId;
    if (!workerId || Buffer.byteLength(workerId) > 256)
      throw new CkptError('MALFORMED', 'hello.worker_id must be 1-256 bytes');
    const runtime = this.job(hello.jobId);
    if (hello.taskIds.length === 0)
      throw new CkptError('MALFORMED', 'hello.task_ids names no task', { jobId: hello.jobId });
    const session = this.sessions.add(workerId, hello.jobId, hello.taskIds, channel, this.now());
    try {
      runtime.tracker.attach(workerId, hello.taskIds);
    } catch (err) {
      this.sessions.remove(session.sessionId);
      throw err;
    }
    channel.send(this.welcome(session, runtime));
    this.log.info(
      { jobId: hello.jobId, workerId, sessionId: session.sessionId, tasks: hello.taskIds.length },
      'worker attached',
    );
    runtime.attempts.onAttach(session, hello.epoch);
    runtime.arm();
    return session;
  }

  /**
   * A standby's hello (`hello.standby`): attaches at once when its tasks
   * are free, and returns the session; otherwise keeps the standby, which
   * `promoted` hears of once a session end frees its tasks, and returns
   * the function that withdraws it (its stream ended). Bad hellos are
   * refused at once, as by `openSession`.
   */
  offerStandby(
    hello: WorkerHello__Output,
    channel: SessionChannel,
    promoted: (session: Session) => void,
  ): { session: Session } | { withdraw: () => void } {
    this.requireRunning();
    const runtime = this.job(hello.jobId);
    if (hello.taskIds.length === 0)
      throw new CkptError('MALFORMED', 'hello.task_ids names no task', { jobId: hello.jobId });
    const taken = runtime.tracker.takenTask(hello.workerId, hello.taskIds);
    if (taken === undefined) return { session: this.openSession(hello, channel) };
    const withdraw = this.standbys.add({ hello, channel, promoted });
    this.log.info(
      { jobId: hello.jobId, workerId: hello.workerId, tasks: hello.taskIds.length, waitsFor: taken.owner },
      'standby waiting',
    );
    return { withdraw };
  }

  /** Standbys of a job waiting for their tasks. */
  waitingStandbys(jobId: string): number {
    return this.standbys.ofJob(jobId).length;
  }

  /** Attaches the waiting standbys of a job whose tasks are all free now, oldest first. */
  private promoteStandbys(runtime: JobRuntime): void {
    const free = (hello: WorkerHello__Output): boolean =>
      runtime.tracker.takenTask(hello.workerId, hello.taskIds) === undefined;
    this.standbys.promote(runtime.jobId, free, (s) => {
      const session = this.openSession(s.hello, s.channel);
      this.log.info({ jobId: runtime.jobId, workerId: s.hello.workerId }, 'standby promoted');
      return session;
    });
  }

  private welcome(session: Session, runtime: JobRuntime): AttachResponse {
    return {
      welcome: {
        sessionId: session.sessionId,
        epoch: runtime.tracker.epoch,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs,
        heartbeatTimeoutMs: this.options.heartbeatTimeoutMs,
        latestCheckpointId: runtime.tracker.latestCheckpointId,
        controlSubjectPrefix: this.options.bus.controlPrefix(runtime.jobId),
        spec: runtime.tracker.spec,
        term: this.term,
      },
    };
  }

  /**
   * Records a heartbeat of a live session and judges the task health it
   * reports: a hung task fails, and the job recovers. Throws
   * TASK_NOT_ATTACHED, recording nothing, for a task the session does not run.
   */
  heartbeat(sessionId: string, tasks: readonly TaskHealth__Output[] = []): void {
    const session = this.sessions.get(sessionId);
    if (session === undefined) return;
    for (const { taskId } of tasks) this.requireSessionTask(session, taskId);
    const now = this.now();
    session.lastHeartbeatMs = now;
    if (tasks.length === 0) {
      session.taskReports = undefined;
      return;
    }
    session.taskReports ??= { sinceMs: now, lastMs: new Map() };
    for (const { taskId } of tasks) session.taskReports.lastMs.set(taskId, now);
    const runtime = this.runningJob(session.jobId);
    if (runtime === undefined) return;
    for (const health of tasks) {
      const why = hungReason(runtime.tracker.policy, health);
      if (why !== undefined) return this.taskHung(runtime, session, health.taskId, why);
    }
  }

  /**
   * Ends a session: its tasks detach, the checkpoints pending for them can
   * no longer complete, so they abort with reason TASK_FAILURE, and if the
   * tasks may have run in this epoch the job recovers.
   */
  closeSession(sessionId: string, why: string): void {
    const session = this.sessions.remove(sessionId);
    if (session === undefined || this.state === 'stopped') return;
    const runtime = this.jobs.get(session.jobId);
    if (runtime === undefined) return;
    const tasks = runtime.tracker.detach(session.workerId);
    this.log.info(
      { jobId: session.jobId, workerId: session.workerId, sessionId, tasks: tasks.length, why },
      'worker detached',
    );
    if (tasks.length > 0 && runtime.tracker.state === 'JOB_STATE_RUNNING') {
      runtime.abortAll('ABORT_REASON_TASK_FAILURE', `worker ${session.workerId} left: ${why}`);
      runtime.attempts.onDetach(session, tasks, why);
      this.promoteStandbys(runtime);
    }
    runtime.arm();
  }

  /** A worker reports tasks restored and ready in `epoch`. */
  tasksReady(sessionId: string, epoch: number, taskIds: readonly string[]): void {
    const { session, runtime } = this.sessionJob(sessionId);
    runtime.attempts.ready(session, epoch, taskIds);
  }

  /** A worker reports a failed task: the job rolls back, unless the report is of an older epoch. */
  taskFailed(sessionId: string, epoch: number, taskId: string, message: string): void {
    const { session, runtime } = this.sessionJob(sessionId);
    this.requireSessionTask(session, taskId);
    if (epoch !== runtime.tracker.epoch) return;
    this.log.warn({ jobId: session.jobId, taskId, epoch, message }, 'task failed');
    void runtime.recover(`task ${taskId} failed: ${message}`);
  }

  private requireSessionTask(session: Session, taskId: string): void {
    if (!session.taskIds.includes(taskId)) {
      const ids = { jobId: session.jobId, taskId };
      throw new CkptError('TASK_NOT_ATTACHED', `task ${taskId} is not attached by worker ${session.workerId}`, ids);
    }
  }

  /** The job's runtime while its tasks run (hung tasks are judged only then). */
  private runningJob(jobId: string): JobRuntime | undefined {
    const runtime = this.jobs.get(jobId);
    const running = runtime?.tracker.state === 'JOB_STATE_RUNNING' && runtime.tracker.attempt === 'running';
    return running ? runtime : undefined;
  }

  /** A hung task fails like one its worker reported failed: the job recovers. */
  private taskHung(runtime: JobRuntime, session: Session, taskId: string, why: string): void {
    this.log.warn({ jobId: session.jobId, workerId: session.workerId, taskId, why }, 'task hung');
    void runtime.recover(`task ${taskId} hung: ${why}`);
  }

  private sessionJob(sessionId: string): { session: Session; runtime: JobRuntime } {
    const session = this.sessions.get(sessionId);
    const runtime = session === undefined ? undefined : this.jobs.get(session.jobId);
    if (session === undefined || runtime === undefined) {
      throw new CkptError('UNAVAILABLE', 'the session has ended', { retryable: true });
    }
    return { session, runtime };
  }

  private sweepSessions(): void {
    this.sweepSilentTasks();
    for (const session of this.sessions.overdue(this.now(), this.options.heartbeatTimeoutMs)) {
      const why = `no heartbeat for ${this.options.heartbeatTimeoutMs} ms`;
      this.log.warn(
        { jobId: session.jobId, workerId: session.workerId, sessionId: session.sessionId },
        'worker session timed out',
      );
      this.closeSession(session.sessionId, why);
      session.channel.end(
        new CkptError('UNAVAILABLE', `session ended: ${why}`, { jobId: session.jobId, retryable: true }),
      );
    }
  }

  /** Tasks that their heartbeating workers stopped reporting are hung. */
  private sweepSilentTasks(): void {
    const now = this.now();
    for (const session of this.sessions.all()) {
      const reports = session.taskReports;
      const runtime = reports === undefined ? undefined : this.runningJob(session.jobId);
      if (reports === undefined || runtime === undefined) continue;
      const silent = silentTask(runtime.tracker.policy, session.taskIds, reports.lastMs, reports.sinceMs, now);
      if (silent !== undefined) this.taskHung(runtime, session, silent.taskId, silent.why);
    }
  }

  // --- checkpoints ------------------------------------------------------------

  /** Starts a checkpoint now; with `wait`, resolves when it has finished. */
  async triggerCheckpoint(
    jobId: string,
    snapshotType: CheckpointInit['snapshotType'] | undefined,
    wait: boolean,
  ): Promise<CheckpointSummary__Output> {
    this.requireRunning();
    const runtime = this.job(jobId);
    const checkpoint = await this.fenced(() => runtime.trigger(true, snapshotType));
    return wait ? runtime.waitFor(checkpoint.id) : checkpoint.summary();
  }

  /** Records one worker's acknowledgements of one checkpoint. */
  acknowledge(request: {
    jobId: string;
    epoch: number;
    checkpointId: number;
    workerId: string;
    snapshots: TaskSnapshot__Output[];
  }) {
    this.requireRunning();
    const runtime = this.job(request.jobId);
    if (request.snapshots.length === 0)
      throw new CkptError('MALFORMED', 'snapshots is empty', { jobId: request.jobId });
    const { checkpoint, duplicates } = runtime.acknowledge(request, request.snapshots);
    return { acknowledgedTasks: checkpoint.acknowledgedTasks, totalTasks: checkpoint.init.taskIds.length, duplicates };
  }

  /** Acknowledgements sent inside a session: for the session's job and worker. */
  acknowledgeInSession(
    sessionId: string,
    request: { epoch: number; checkpointId: number; snapshots: TaskSnapshot__Output[] },
  ): ReturnType<Coordinator['acknowledge']> {
    const { session } = this.sessionJob(sessionId);
    return this.acknowledge({ ...request, jobId: session.jobId, workerId: session.workerId });
  }

  /** Declines sent inside a session: for the session's job and worker. */
  declineInSession(
    sessionId: string,
    request: { epoch: number; checkpointId: number; declines: Array<{ taskId: string; message: string }> },
  ): void {
    const { session } = this.sessionJob(sessionId);
    this.decline({ ...request, jobId: session.jobId, workerId: session.workerId });
  }

  /** Records declines: the checkpoint aborts with reason DECLINED. */
  decline(request: {
    jobId: string;
    epoch: number;
    checkpointId: number;
    workerId: string;
    declines: Array<{ taskId: string; message: string }>;
  }): void {
    this.requireRunning();
    if (request.declines.length === 0) throw new CkptError('MALFORMED', 'declines is empty', { jobId: request.jobId });
    this.job(request.jobId).decline(request, request.declines);
  }

  /** Pending, remembered and retained checkpoints of a job, newest first. */
  async listCheckpoints(jobId: string): Promise<CheckpointSummary__Output[]> {
    const runtime = this.job(jobId);
    const inMemory = runtime.tracker.known().map((c) => c.summary());
    const stored = await this.options.store.listSummaries(jobId);
    const byId = new Map<number, CheckpointSummary__Output>();
    for (const s of stored) byId.set(s.checkpointId, s);
    for (const s of inMemory)
      if (!byId.has(s.checkpointId) || s.state !== 'CHECKPOINT_STATE_COMPLETED') byId.set(s.checkpointId, s);
    return [...byId.values()].sort((a, b) => b.checkpointId - a.checkpointId);
  }

  /** One checkpoint, with its manifest when it is completed and retained. */
  async getCheckpoint(
    jobId: string,
    checkpointId: number,
  ): Promise<{ summary: CheckpointSummary__Output; manifest?: Manifest__Output }> {
    const runtime = this.job(jobId);
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
