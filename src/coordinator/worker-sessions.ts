/**
 * The coordinator's worker sessions: hellos (workers and standbys),
 * heartbeats (the task health they report goes to `hung-tasks.ts`), ready
 * and failure reports, session ends and timeouts, and the session tokens
 * that acknowledgement and decline calls carry. Every message is checked before it is used; a bad one is refused
 * with its reason and changes nothing.
 */
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { TaskHealth } from '../gen/ckpt/v1/TaskHealth.js';
import type { WorkerHello } from '../gen/ckpt/v1/WorkerHello.js';
import { CkptError } from '../core/errors.js';
import { checkCount, checkTextBytes, type Limits } from '../core/limits.js';
import { checkHealth, checkHello, checkTaskIds, type CheckedHello } from '../core/request-checks.js';
import { checkId } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import { HungTasks } from './hung-tasks.js';
import type { JobRuntime } from './job-runtime.js';
import type { CoordinatorObserver } from './observer.js';
import { warmReplyCodecs, welcomeReply } from './reply-encoding.js';
import { SessionRegistry, type Session, type SessionChannel } from './sessions.js';
import { StandbyRegistry, type StandbyTicket } from './standbys.js';

/** What the sessions need from their coordinator. */
export interface WorkerSessionsDeps {
  logger: Logger;
  now: () => number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  standbyTimeoutMs: number;
  limits: Pick<Limits, 'maxSessions' | 'maxStandbysPerJob' | 'maxTasksPerJob' | 'maxMessageTextBytes'>;
  /** The leader's term, sent in every welcome. */
  term: number;
  /** The job's control subject prefix. */
  controlPrefix(jobId: string): string;
  /** The job's runtime; throws UNKNOWN_JOB or JOB_QUARANTINED. */
  job(jobId: string): JobRuntime;
  /** The job's runtime, if the coordinator runs it. */
  findJob(jobId: string): JobRuntime | undefined;
  /** Throws TAKING_OVER or SHUTTING_DOWN unless the coordinator runs. */
  requireRunning(): void;
  /** True once the coordinator stopped. */
  stopped(): boolean;
  /** Hears how long each session lasted when it ends. */
  observer?: CoordinatorObserver;
}

/** Tasks from which a hello is attached and welcomed in a turn of the event loop of its own. */
export const DEFERRED_HELLO_TASKS = 1000;

/** A standby's answer: attached at once, or waiting with a ticket. */
export type StandbyOffer = { session: Session } | { ticket: StandbyTicket };

/** The sessions and standbys of every job of one coordinator. */
export class WorkerSessions {
  private readonly d: WorkerSessionsDeps;
  private readonly log: Logger;
  private readonly registry = new SessionRegistry();
  private readonly standbys = new StandbyRegistry();
  private readonly hung: HungTasks;
  /** When `sweep` last ran. */
  private lastSweepMs: number;

  constructor(deps: WorkerSessionsDeps) {
    this.d = deps;
    this.log = deps.logger.child({ component: 'sessions' });
    this.hung = new HungTasks({ log: this.log, now: deps.now, findJob: (jobId) => deps.findJob(jobId) });
    this.lastSweepMs = deps.now();
    warmReplyCodecs();
  }

  /** Live sessions of a job. */
  ofJob(jobId: string): Session[] {
    return this.registry.ofJob(jobId);
  }

  /** Number of live sessions of each job that has any. */
  countByJob(): Map<string, number> {
    return this.registry.countByJob();
  }

  /** Standbys of a job waiting for their tasks. */
  waitingStandbys(jobId: string): number {
    return this.standbys.ofJob(jobId).length;
  }

  /**
   * Opens a worker session from its hello; the welcome is sent on the
   * channel. A hello of `DEFERRED_HELLO_TASKS` tasks or more is taken in a
   * turn of the event loop of its own: the hellos of a large job's workers
   * arrive together, and taken one after the other in one turn they held
   * the coordinator's timers (the election lease's keepalive among them)
   * for seconds. The worker sends nothing for the session before its
   * welcome; if the deferred attach is refused, the stream ends with the
   * reason, as a refused hello's does.
   */
  open(hello: WorkerHello, channel: SessionChannel): Session {
    this.d.requireRunning();
    const checked = checkHello(hello, this.d.limits.maxTasksPerJob);
    if (checked.taskIds.length < DEFERRED_HELLO_TASKS) return this.attach(checked, channel);
    this.d.job(checked.jobId);
    const session = this.addSession(checked, channel);
    setImmediate(() => {
      if (this.registry.get(session.sessionId) !== session || this.d.stopped()) return;
      try {
        this.d.requireRunning();
        this.attachTasks(session, checked, this.d.job(checked.jobId));
      } catch (err) {
        this.registry.remove(session.sessionId);
        channel.end(CkptError.from(err));
      }
    });
    return session;
  }

  private addSession(hello: CheckedHello, channel: SessionChannel): Session {
    if (this.registry.size >= this.d.limits.maxSessions) {
      throw new CkptError('LIMIT_REACHED', `the coordinator holds ${this.registry.size} sessions, its limit`, {
        jobId: hello.jobId,
        retryable: true,
      });
    }
    return this.registry.add({ ...hello, channel, nowMs: this.d.now() });
  }

  private attach(hello: CheckedHello, channel: SessionChannel): Session {
    const runtime = this.d.job(hello.jobId);
    const session = this.addSession(hello, channel);
    this.attachTasks(session, hello, runtime);
    return session;
  }

  /** Attaches a new session's tasks and welcomes it; a refusal removes the session and throws. */
  private attachTasks(session: Session, hello: CheckedHello, runtime: JobRuntime): void {
    const { channel } = session;
    try {
      runtime.tracker.attach(hello.workerId, hello.taskIds);
    } catch (err) {
      // The tasks are checked once, in the attach: a refused hello leaves no session behind.
      this.registry.remove(session.sessionId);
      throw err;
    }
    channel.send(this.welcome(session, runtime));
    // Its silence counts from its welcome: a welcome of a large job's spec takes a while to be built and sent.
    session.lastHeartbeatMs = this.d.now();
    this.log.info(
      { jobId: hello.jobId, workerId: hello.workerId, sessionId: session.sessionId, tasks: hello.taskIds.length },
      'worker attached',
    );
    runtime.attempts.onAttach(session, hello.epoch);
    runtime.arm();
  }

  /**
   * A standby's hello: attaches at once when its tasks are free and returns
   * the session; otherwise keeps the standby, which `promoted` hears of
   * once a session end frees its tasks, and returns its ticket (to record
   * its heartbeats, or withdraw it when its stream ends). Bad hellos are
   * refused at once, as by `open`.
   */
  offerStandby(hello: WorkerHello, channel: SessionChannel, promoted: (session: Session) => void): StandbyOffer {
    this.d.requireRunning();
    const checked = checkHello(hello, this.d.limits.maxTasksPerJob);
    const runtime = this.d.job(checked.jobId);
    const taken = runtime.tracker.takenTask(checked.workerId, checked.taskIds);
    if (taken === undefined) return { session: this.attach(checked, channel) };
    const waiting = this.standbys.ofJob(checked.jobId).length;
    if (waiting >= this.d.limits.maxStandbysPerJob) {
      throw new CkptError('LIMIT_REACHED', `job ${checked.jobId} has ${waiting} standbys waiting, its limit`, {
        jobId: checked.jobId,
        retryable: true,
      });
    }
    const ticket = this.standbys.add({ hello: checked, channel, promoted }, this.d.now);
    this.log.info(
      { jobId: checked.jobId, workerId: checked.workerId, tasks: checked.taskIds.length, waitsFor: taken.owner },
      'standby waiting',
    );
    return { ticket };
  }

  /** Attaches the waiting standbys of a job whose tasks are all free now, oldest first. */
  private promoteStandbys(runtime: JobRuntime): void {
    const free = (hello: CheckedHello): boolean =>
      runtime.tracker.takenTask(hello.workerId, hello.taskIds) === undefined;
    this.standbys.promote(runtime.jobId, free, (s) => {
      const session = this.attach(s.hello, s.channel);
      this.log.info({ jobId: runtime.jobId, workerId: s.hello.workerId }, 'standby promoted');
      return session;
    });
  }

  private welcome(session: Session, runtime: JobRuntime): AttachResponse {
    // Encoded here, the job's spec once for every welcome (a large job's spec is about 1 MB).
    return welcomeReply({
      sessionId: session.sessionId,
      epoch: runtime.tracker.epoch,
      heartbeatIntervalMs: this.d.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.d.heartbeatTimeoutMs,
      latestCheckpointId: runtime.tracker.latestCheckpointId,
      controlSubjectPrefix: this.d.controlPrefix(runtime.jobId),
      spec: runtime.tracker.spec,
      term: this.d.term,
      sessionToken: session.token,
      nextCheckpointId: runtime.tracker.ids.nextId,
    });
  }

  /**
   * Records a heartbeat of a live session and judges the task health it
   * reports: a hung task fails, and the job recovers. Throws
   * TASK_NOT_ATTACHED, recording nothing, for a task the session does not run.
   */
  heartbeat(sessionId: string, reported: readonly TaskHealth[] = [], sentAtMs: unknown = 0): void {
    const session = this.registry.get(sessionId);
    if (session === undefined) return;
    checkCount(sentAtMs ?? 0, 'heartbeat.sent_at_ms', Number.MAX_SAFE_INTEGER, { jobId: session.jobId });
    const tasks = checkHealth(reported, session.taskIds.length, { jobId: session.jobId });
    for (const { taskId } of tasks) this.requireSessionTask(session, taskId);
    const now = this.d.now();
    session.lastHeartbeatMs = now;
    this.hung.reported(session, tasks, now);
  }

  /**
   * Ends a session: its tasks detach, the checkpoints pending for them can
   * no longer complete, so they abort with reason TASK_FAILURE, and if the
   * tasks may have run in this epoch the job recovers.
   */
  close(sessionId: string, why: string): void {
    const session = this.end(sessionId);
    if (session === undefined || this.d.stopped()) return;
    const runtime = this.d.findJob(session.jobId);
    if (runtime === undefined) return;
    const tasks = runtime.tracker.detach(session.workerId);
    this.log.info(
      { jobId: session.jobId, workerId: session.workerId, sessionId, tasks: tasks.length, why },
      'worker detached',
    );
    if (tasks.length > 0 && runtime.tracker.state === 'JOB_STATE_RUNNING') {
      runtime.abortAll('ABORT_REASON_TASK_FAILURE', `a worker left: ${why}`);
      runtime.attempts.onDetach(session, tasks, why);
      this.promoteStandbys(runtime);
    }
    runtime.arm();
  }

  /** A worker reports tasks restored and ready in `epoch`. */
  ready(sessionId: string, epoch: unknown, taskIds: readonly unknown[]): void {
    const { session, runtime } = this.sessionJob(sessionId);
    const ids = { jobId: session.jobId };
    const checkedEpoch = checkCount(epoch ?? 0, 'ready.epoch', Number.MAX_SAFE_INTEGER, ids);
    const checked = checkTaskIds(taskIds, 'ready.task_ids', session.taskIds.length, ids);
    for (const taskId of checked) this.requireSessionTask(session, taskId);
    runtime.attempts.ready(session, checkedEpoch, checked);
  }

  /** A worker reports a failed task: the job rolls back, unless the report is of an older epoch. */
  failed(sessionId: string, failure: { taskId?: unknown; epoch?: unknown; message?: string }): void {
    const { session, runtime } = this.sessionJob(sessionId);
    const ids = { jobId: session.jobId };
    const taskId = checkId(failure.taskId, 'failure.task_id', ids);
    const epoch = checkCount(failure.epoch ?? 0, 'failure.epoch', Number.MAX_SAFE_INTEGER, ids);
    const message = checkTextBytes(failure.message ?? '', this.d.limits.maxMessageTextBytes, 'failure.message', {
      ...ids,
      taskId,
    });
    this.requireSessionTask(session, taskId);
    if (epoch !== runtime.tracker.epoch) return;
    this.log.warn({ jobId: session.jobId, taskId, epoch, message }, 'task failed');
    void runtime.recover(`task ${taskId} failed: ${message}`);
  }

  /**
   * The live session and job of a session id, for a message the session
   * sent; UNAVAILABLE once it ended. The message shows the worker alive as
   * a heartbeat does: a worker busy snapshotting thousands of tasks may
   * send its acknowledgements before its next heartbeat.
   */
  sessionJob(sessionId: string): { session: Session; runtime: JobRuntime } {
    const session = this.registry.get(sessionId);
    const runtime = session === undefined ? undefined : this.d.findJob(session.jobId);
    if (session === undefined || runtime === undefined) {
      throw new CkptError('UNAVAILABLE', 'the session has ended', { retryable: true });
    }
    session.lastHeartbeatMs = this.d.now();
    return { session, runtime };
  }

  /**
   * The live session of `token`, which must belong to `jobId`. Throws
   * PERMISSION_DENIED, naming no session or worker, for a missing or
   * unknown token, or one of another job or worker.
   */
  sessionOfToken(token: unknown, jobId: string, workerId: unknown): Session {
    const session = typeof token === 'string' ? this.registry.byTokenOf(token) : undefined;
    const workerMatches = workerId === undefined || workerId === '' || workerId === session?.workerId;
    if (session === undefined || session.jobId !== jobId || !workerMatches) {
      throw new CkptError(
        'PERMISSION_DENIED',
        `the call's session_token does not name a live session of job ${jobId} and its worker: send the token of the Welcome of the session that runs the tasks`,
        { jobId },
      );
    }
    return session;
  }

  private requireSessionTask(session: Session, taskId: string): void {
    if (!session.taskSet.has(taskId)) {
      const ids = { jobId: session.jobId, taskId };
      throw new CkptError('TASK_NOT_ATTACHED', `task ${taskId} is not attached by this session`, ids);
    }
  }

  /**
   * Ends overdue sessions and silent standbys; fails tasks their workers
   * stopped reporting. Not right after the coordinator's own event loop
   * stalled (this sweep comes more than half a heartbeat timeout after the
   * last): the heartbeats sent meanwhile wait unread behind this timer, so
   * silence cannot be judged until they are read, by the next sweep.
   */
  sweep(): void {
    const now = this.d.now();
    const sinceLastMs = now - this.lastSweepMs;
    this.lastSweepMs = now;
    if (sinceLastMs > this.d.heartbeatTimeoutMs / 2) {
      if (this.registry.size > 0)
        this.log.warn({ sinceLastMs }, 'coordinator stalled: session timeouts judged next sweep');
      return;
    }
    this.hung.sweep(this.registry.all());
    for (const session of this.registry.overdue(now, this.d.heartbeatTimeoutMs)) {
      const why = `no heartbeat for ${this.d.heartbeatTimeoutMs} ms`;
      this.log.warn(
        { jobId: session.jobId, workerId: session.workerId, sessionId: session.sessionId },
        'worker session timed out',
      );
      this.close(session.sessionId, why);
      session.channel.end(
        new CkptError('UNAVAILABLE', `session ended: ${why}`, { jobId: session.jobId, retryable: true }),
      );
    }
    for (const standby of this.standbys.silent(now, this.d.standbyTimeoutMs)) {
      const jobId = standby.hello.jobId;
      this.log.warn({ jobId, workerId: standby.hello.workerId }, 'silent standby ended');
      const why = `standby ended: no heartbeat for ${this.d.standbyTimeoutMs} ms`;
      standby.channel.end(new CkptError('UNAVAILABLE', why, { jobId, retryable: true }));
    }
  }

  /** Tells the job's sessions it was canceled and ends its standbys. */
  jobCanceled(jobId: string): void {
    for (const s of this.registry.ofJob(jobId)) s.channel.send({ canceled: { jobId } });
    this.standbys.endAll(new CkptError('JOB_CANCELED', `job ${jobId} was canceled`, { jobId }), jobId);
  }

  /** Ends the sessions and standbys of one job with `error`; its tasks are not detached (the job is gone). */
  endJob(jobId: string, error: CkptError): void {
    for (const session of this.registry.ofJob(jobId)) {
      this.end(session.sessionId);
      session.channel.end(error);
    }
    this.standbys.endAll(error, jobId);
  }

  /** Ends every session and standby with `error` (the coordinator stops). */
  endAll(error: CkptError): void {
    for (const session of this.registry.all()) {
      this.end(session.sessionId);
      session.channel.end(error);
    }
    this.standbys.endAll(error);
  }

  /** Forgets a live session, and tells the observer how long it lasted. */
  private end(sessionId: string): Session | undefined {
    const session = this.registry.remove(sessionId);
    if (session !== undefined) this.d.observer?.sessionEnded(session.jobId, this.d.now() - session.openedAtMs);
    return session;
  }
}
