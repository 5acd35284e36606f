/**
 * The tasks of a job's current attempt: which worker session attached each
 * task, which tasks reported ready in the attempt's epoch, and so where the
 * attempt is. Part of the pure protocol core: no I/O, no clock.
 */
import { CkptError } from './errors.js';

/**
 * Where the job's current attempt is. `restoring`: tasks restore the
 * recovery's checkpoint (see `recoveryCheckpointId`) in the current epoch
 * and report ready; nothing runs yet. `running`: every task reported ready
 * and was told to start. `resuming`: a coordinator started and does not
 * know yet whether the tasks kept running in the stored epoch while it was
 * away.
 */
export type JobAttempt = 'resuming' | 'restoring' | 'running';

/** A task attached by another worker than the one asking, and that worker. */
export interface TakenTask {
  taskId: string;
  owner: string;
}

/** Attachments and readiness of one job's tasks. */
export class TaskRoster {
  private readonly jobId: string;
  private readonly taskIds: ReadonlySet<string>;
  private readonly taskTotal: number;
  private readonly attached = new Map<string, string>();
  /** The tasks each worker attached: a detach touches only its own (a job may have 100,000 tasks). */
  private readonly byWorker = new Map<string, Set<string>>();
  private readonly ready = new Set<string>();
  private attemptValue: JobAttempt;

  /** `taskIds` as a set is kept as it is: the caller must not change it. */
  constructor(jobId: string, taskIds: readonly string[] | ReadonlySet<string>, attempt: JobAttempt) {
    this.jobId = jobId;
    this.taskIds = taskIds instanceof Set ? taskIds : new Set(taskIds);
    this.taskTotal = this.taskIds.size;
    this.attemptValue = attempt;
  }

  get attempt(): JobAttempt {
    return this.attemptValue;
  }
  get attachedCount(): number {
    return this.attached.size;
  }
  get readyCount(): number {
    return this.ready.size;
  }
  get taskCount(): number {
    return this.taskTotal;
  }

  /** The worker that attached `taskId`, if any. */
  ownerOf(taskId: string): string | undefined {
    return this.attached.get(taskId);
  }

  /**
   * The first of `taskIds` attached by another worker than `workerId`, or
   * undefined when none is. Throws UNKNOWN_TASK or MALFORMED (a task named
   * twice); changes nothing.
   */
  takenTask(workerId: string, taskIds: readonly string[]): TakenTask | undefined {
    const seen = new Set<string>();
    let taken: TakenTask | undefined;
    for (const taskId of taskIds) {
      if (!this.taskIds.has(taskId)) {
        throw new CkptError('UNKNOWN_TASK', `job ${this.jobId} has no task ${taskId}`, { jobId: this.jobId, taskId });
      }
      if (seen.has(taskId)) {
        throw new CkptError('MALFORMED', `task ${taskId} named twice in hello`, { jobId: this.jobId, taskId });
      }
      seen.add(taskId);
      const owner = this.attached.get(taskId);
      if (owner !== undefined && owner !== workerId) taken ??= { taskId, owner };
    }
    return taken;
  }

  /**
   * Attaches tasks to a worker; all or none (TASK_ALREADY_ATTACHED when
   * another worker has one: retryable, since the task frees when that
   * worker's session ends).
   */
  attach(workerId: string, taskIds: readonly string[]): void {
    const taken = this.takenTask(workerId, taskIds);
    if (taken !== undefined) {
      throw new CkptError('TASK_ALREADY_ATTACHED', `task ${taken.taskId} is attached by another worker session`, {
        jobId: this.jobId,
        taskId: taken.taskId,
        retryable: true,
      });
    }
    let own = this.byWorker.get(workerId);
    if (own === undefined) {
      own = new Set();
      this.byWorker.set(workerId, own);
    }
    for (const taskId of taskIds) {
      this.attached.set(taskId, workerId);
      own.add(taskId);
    }
  }

  /** Detaches every task of a worker, which is no longer ready either; returns the task ids it had. */
  detach(workerId: string): string[] {
    const gone = this.tasksOf(workerId);
    this.byWorker.delete(workerId);
    for (const taskId of gone) {
      this.attached.delete(taskId);
      this.ready.delete(taskId);
    }
    return gone;
  }

  /** Task ids a worker has attached. */
  tasksOf(workerId: string): string[] {
    return [...(this.byWorker.get(workerId) ?? [])];
  }

  allAttached(): boolean {
    return this.attached.size === this.taskTotal;
  }

  /**
   * Records that a worker's tasks are ready; tasks it has not attached are
   * ignored, and so is every report once the attempt runs. Returns true
   * when this makes every task ready: the attempt is then `running`.
   */
  markReady(workerId: string, taskIds: readonly string[]): boolean {
    if (this.attemptValue === 'running') return false;
    for (const taskId of taskIds) {
      if (this.attached.get(taskId) === workerId) this.ready.add(taskId);
    }
    if (this.ready.size < this.taskTotal) return false;
    this.attemptValue = 'running';
    return true;
  }

  /** A new attempt restores every task: none is ready in it yet. */
  restoring(): void {
    this.attemptValue = 'restoring';
    this.ready.clear();
  }
}
