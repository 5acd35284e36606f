/**
 * Hung tasks, as the coordinator watches for them: a task whose worker
 * reports it stuck in its code or its snapshot, or a task that its
 * heartbeating worker stopped reporting, fails like a task its worker
 * reported failed, and the job recovers. Judged only while the job's
 * attempt runs; the rules themselves are `core/task-health.ts`.
 */
import type { TaskHealth__Output } from '../gen/ckpt/v1/TaskHealth.js';
import { hungReason, silentTask } from '../core/task-health.js';
import type { Logger } from '../log/index.js';
import type { JobRuntime } from './job-runtime.js';
import type { Session } from './sessions.js';

/** What the watch needs from the sessions. */
export interface HungTasksDeps {
  /** The sessions' logger. */
  log: Logger;
  now: () => number;
  /** The job's runtime, if the coordinator runs it. */
  findJob(jobId: string): JobRuntime | undefined;
}

/** The hung-task watch over every session of one coordinator. */
export class HungTasks {
  private readonly deps: HungTasksDeps;

  constructor(deps: HungTasksDeps) {
    this.deps = deps;
  }

  /**
   * Records the task health a session's heartbeat reported at `nowMs`
   * (checked, and of the session's own tasks) and fails the first hung
   * task. A heartbeat without tasks means the worker reports none now.
   */
  reported(session: Session, tasks: readonly TaskHealth__Output[], nowMs: number): void {
    if (tasks.length === 0) {
      session.taskReports = undefined;
      return;
    }
    session.taskReports ??= { sinceMs: nowMs, lastMs: new Map() };
    for (const { taskId } of tasks) session.taskReports.lastMs.set(taskId, nowMs);
    const runtime = this.runningJob(session.jobId);
    if (runtime === undefined) return;
    for (const health of tasks) {
      const why = hungReason(runtime.tracker.policy, health);
      if (why !== undefined) return this.taskHung(runtime, session, health.taskId, why);
    }
  }

  /** Tasks that their heartbeating workers stopped reporting are hung. */
  sweep(sessions: readonly Session[]): void {
    const now = this.deps.now();
    for (const session of sessions) {
      const reports = session.taskReports;
      const runtime = reports === undefined ? undefined : this.runningJob(session.jobId);
      if (reports === undefined || runtime === undefined) continue;
      const silent = silentTask(runtime.tracker.policy, session.taskIds, reports.lastMs, reports.sinceMs, now);
      if (silent !== undefined) this.taskHung(runtime, session, silent.taskId, silent.why);
    }
  }

  /** The job's runtime while its tasks run (hung tasks are judged only then). */
  private runningJob(jobId: string): JobRuntime | undefined {
    const runtime = this.deps.findJob(jobId);
    const running = runtime?.tracker.state === 'JOB_STATE_RUNNING' && runtime.tracker.attempt === 'running';
    return running ? runtime : undefined;
  }

  /** A hung task fails like one its worker reported failed: the job recovers. */
  private taskHung(runtime: JobRuntime, session: Session, taskId: string, why: string): void {
    this.deps.log.warn({ jobId: session.jobId, workerId: session.workerId, taskId, why }, 'task hung');
    void runtime.recover(`task ${taskId} hung: ${why}`);
  }
}
