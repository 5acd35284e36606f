/**
 * The one timer of a job: it fires at the earliest deadline of a pending
 * checkpoint (which then aborts with reason TIMEOUT) or when the next
 * periodic checkpoint is due, whichever comes first. A periodic trigger
 * that failed is retried after a backoff, not at once.
 */
import { periodicTriggerRetryMs } from '../core/backoff.js';
import type { AbortCause, Checkpoint } from '../core/checkpoint.js';
import { hasReason, LeadershipLostError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { Logger } from '../log/index.js';

/** What a job's timer needs from its runtime. */
export interface JobTimerDeps {
  tracker: JobTracker;
  now: () => number;
  /** The job's logger. */
  log: Logger;
  /** True once the job's timers stopped for good. */
  stopped(): boolean;
  /** True while a rollback runs: no periodic checkpoint starts. */
  recovering(): boolean;
  /** Aborts a pending checkpoint and tells the tasks. */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string): void;
  /** Starts a periodic checkpoint. */
  trigger(): Promise<unknown>;
  /** A guarded write was refused: this coordinator is no longer the leader. */
  onLeadershipLost: (err: LeadershipLostError) => void;
}

/** Deadlines and periodic triggers of one job. */
export class JobTimer {
  private readonly deps: JobTimerDeps;
  private timer: NodeJS.Timeout | undefined;
  /** A periodic trigger is on its way (reserving ids, say): no second one. */
  private periodicInFlight = false;
  /** Periodic triggers that failed in a row, and when the next may be tried. */
  private periodicFailures = 0;
  private periodicRetryAtMs = 0;

  constructor(deps: JobTimerDeps) {
    this.deps = deps;
  }

  /** Sets the one timer to the next deadline or periodic trigger. */
  arm(): void {
    if (this.deps.stopped()) return;
    this.clear();
    const due = [this.deps.tracker.nextDeadlineMs(), this.periodicDueMs()].filter((t): t is number => t !== undefined);
    if (due.length === 0) return;
    const delay = Math.max(0, Math.min(...due) - this.deps.now());
    this.timer = setTimeout(() => this.onTimer(), Math.min(delay, 2 ** 31 - 1));
  }

  /** Clears the timer; `arm` sets it again. */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private periodicDueMs(): number | undefined {
    const due = this.deps.tracker.nextPeriodicDueAtMs();
    if (due === undefined || this.periodicInFlight) return undefined;
    return Math.max(due, this.periodicRetryAtMs);
  }

  /**
   * A periodic trigger that failed (etcd unreachable while reserving ids,
   * say) is retried after a backoff that doubles from 100 ms up to the
   * checkpoint interval, at most 5 s, instead of at once.
   */
  private periodicFailed(err: unknown): void {
    this.periodicFailures++;
    const backoffMs = periodicTriggerRetryMs(this.periodicFailures, this.deps.tracker.interval.intervalMs);
    this.periodicRetryAtMs = this.deps.now() + backoffMs;
    this.deps.log.error({ err, failures: this.periodicFailures, retryInMs: backoffMs }, 'periodic trigger failed');
  }

  private onTimer(): void {
    this.timer = undefined;
    const { tracker } = this.deps;
    const now = this.deps.now();
    for (const checkpoint of tracker.expired(now)) {
      this.deps.abort(
        checkpoint,
        'ABORT_REASON_TIMEOUT',
        `not acknowledged by ${checkpoint.init.taskIds.length - checkpoint.acknowledgedTasks} tasks within ${tracker.policy.timeoutMs} ms`,
      );
    }
    const periodic = this.periodicDueMs();
    if (periodic !== undefined && periodic <= now && !this.deps.recovering()) this.triggerPeriodic();
    this.arm();
  }

  private triggerPeriodic(): void {
    this.periodicInFlight = true;
    this.deps
      .trigger()
      .then(
        () => {
          this.periodicFailures = 0;
          this.periodicRetryAtMs = 0;
        },
        (err: unknown) => {
          if (err instanceof LeadershipLostError) this.deps.onLeadershipLost(err);
          else if (!hasReason(err, 'TASKS_NOT_READY', 'TOO_MANY_PENDING', 'JOB_CANCELED')) this.periodicFailed(err);
        },
      )
      .finally(() => {
        this.periodicInFlight = false;
        this.arm();
      });
  }
}
