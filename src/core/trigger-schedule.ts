/**
 * When a job's checkpoint may start and when the next periodic one is due:
 * the one refusal rule for manual and periodic triggers, the interval in
 * force (fixed or adaptive, see `adaptive-interval.ts`) and the minimum
 * pause, and which triggers take full snapshots. Pure: the tracker feeds it
 * the job's counts and the times.
 */
import type { JobState__Output } from '../gen/ckpt/v1/JobState.js';
import { AdaptiveInterval, type IntervalChoice } from './adaptive-interval.js';
import type { CheckpointInit } from './checkpoint.js';
import { CkptError } from './errors.js';
import type { ResolvedPolicy } from './policy.js';
import type { TaskRoster } from './task-roster.js';

/** What a trigger refusal is decided from. */
export interface TriggerScope {
  jobId: string;
  state: JobState__Output;
  epoch: number;
  /** The job's tasks: how many, how many attached and ready, where the attempt is. */
  roster: Pick<TaskRoster, 'attempt' | 'taskCount' | 'attachedCount' | 'readyCount'>;
  pending: number;
  maxConcurrent: number;
}

/**
 * Why a checkpoint cannot start now, or undefined when it can. The job
 * runs, every task is attached and has restored the current epoch, and
 * fewer checkpoints than the policy allows are pending.
 */
export function triggerRefusal(scope: TriggerScope): CkptError | undefined {
  if (mayTrigger(scope)) return undefined;
  const { jobId, roster } = scope;
  const ids = { jobId };
  const tasks = roster.taskCount;
  if (scope.state === 'JOB_STATE_CANCELED') return new CkptError('JOB_CANCELED', `job ${jobId} is canceled`, ids);
  if (roster.attachedCount !== tasks) {
    return new CkptError('TASKS_NOT_READY', `${tasks - roster.attachedCount} of ${tasks} tasks are not attached`, ids);
  }
  if (roster.attempt !== 'running') {
    const message = `${tasks - roster.readyCount} of ${tasks} tasks have not restored epoch ${scope.epoch} yet`;
    return new CkptError('TASKS_NOT_READY', message, ids);
  }
  const message = `${scope.pending} checkpoints pending, policy allows ${scope.maxConcurrent}`;
  return new CkptError('TOO_MANY_PENDING', message, ids);
}

/**
 * True when `triggerRefusal` has nothing to refuse: the same rules without
 * building an error, for the timer that asks after every change.
 */
export function mayTrigger(scope: TriggerScope): boolean {
  const { roster } = scope;
  return (
    scope.state !== 'JOB_STATE_CANCELED' &&
    roster.attachedCount === roster.taskCount &&
    roster.attempt === 'running' &&
    scope.pending < scope.maxConcurrent
  );
}

/** The periodic schedule of one job and the full-or-incremental choice of its triggers. */
export class TriggerSchedule {
  private readonly policy: ResolvedPolicy;
  private readonly interval: AdaptiveInterval;
  private lastTriggeredAtMs = -Infinity;
  private lastFinishedAtMs = -Infinity;
  private triggersSinceFull = 0;

  constructor(policy: ResolvedPolicy) {
    this.policy = policy;
    this.interval = new AdaptiveInterval(policy.intervalMs, policy.adaptive);
  }

  /** The interval between periodic triggers in force now, and why. */
  get intervalChoice(): IntervalChoice {
    return this.interval.current;
  }

  /**
   * When the next periodic checkpoint is due: an interval after the last
   * trigger and the minimum pause after the last finished checkpoint.
   * Undefined when periodic checkpoints are off; the time may be past.
   */
  nextDueAtMs(): number | undefined {
    const { intervalMs } = this.interval.current;
    if (intervalMs === 0) return undefined;
    return Math.max(this.lastTriggeredAtMs + intervalMs, this.lastFinishedAtMs + this.policy.minPauseMs, 0);
  }

  /**
   * Records a trigger at `nowMs` and returns its snapshot type: `requested`
   * if given, else a full one every `fullEvery` triggers (every one when
   * `fullEvery` is 0) and incremental ones between. A full one restarts the count.
   */
  triggered(nowMs: number, requested?: CheckpointInit['snapshotType']): CheckpointInit['snapshotType'] {
    const full = this.policy.fullEvery === 0 || this.triggersSinceFull % this.policy.fullEvery === 0;
    const type = requested ?? (full ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_INCREMENTAL');
    this.triggersSinceFull = type === 'SNAPSHOT_TYPE_FULL' ? 1 : this.triggersSinceFull + 1;
    this.lastTriggeredAtMs = nowMs;
    return type;
  }

  /** A checkpoint finished (completed or aborted) at `nowMs`: the minimum pause counts from here. */
  finished(nowMs: number): void {
    this.lastFinishedAtMs = nowMs;
  }

  /** A checkpoint completed `durationMs` after its trigger: an adaptive interval follows it. */
  completed(durationMs: number): void {
    this.interval.completed(durationMs);
  }
}
