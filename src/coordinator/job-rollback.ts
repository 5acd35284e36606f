/**
 * One job's rollbacks: a recovery after a failure, or an operator's restore
 * to a retained checkpoint. Either aborts what is pending, raises the epoch
 * in etcd, broadcasts `recover` and sends every session its restore. At
 * most one runs at a time; recoveries in a row back off (`RestartBackoff`).
 */
import type { AbortCause } from '../core/checkpoint.js';
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import { CkptError, LeadershipLostError, StaleEpochError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore, LeaderGuard } from '../core/ports.js';
import type { Logger } from '../log/index.js';
import type { AttemptControl } from './attempt-control.js';
import type { CommitPipeline } from './commit-pipeline.js';
import type { JobBroadcasts } from './job-broadcasts.js';
import { RestartBackoff } from './restart-backoff.js';

/** The epoch a rollback moved the job to, and the checkpoint every task restores from in it. */
export interface RollBack {
  epoch: number;
  checkpointId: number;
}

/** What a rollback does: why, how pending checkpoints abort, and an operator's checkpoint (0: the latest). */
interface RollBackPlan {
  why: string;
  reason: AbortCause;
  restoreTo?: number;
}

/** What a job's rollbacks need from its runtime. */
export interface JobRollbackDeps {
  tracker: JobTracker;
  store: CheckpointStore;
  /** Fences the epoch bump to this coordinator's leadership; none when it runs alone. */
  guard: LeaderGuard | undefined;
  now: () => number;
  /** The job's logger. */
  log: Logger;
  broadcasts: JobBroadcasts;
  /** A rollback waits for the commits in flight. */
  commits: Pick<CommitPipeline, 'settled'>;
  /** Sends every session its restore once the epoch rose. */
  attempts: Pick<AttemptControl, 'restoreAll'>;
  /** Aborts every pending checkpoint that is not committing. */
  abortAll(reason: AbortCause, message: string): void;
  /** Sets the job's timer again once a rollback ended. */
  arm(): void;
  /** The job entered `epoch`, restoring `checkpointId`. */
  recovered(epoch: number, checkpointId: number): void;
  /** True once the coordinator stopped: the job is left to the next one. */
  stopped(): boolean;
  /** A guarded write was refused: this coordinator is no longer the leader. */
  onLeadershipLost: (err: LeadershipLostError) => void;
}

/**
 * How a recovery tries again to raise the epoch when etcd did not answer:
 * until it answers, the leadership is lost or the coordinator stops. A
 * recovery that gave up would leave the job in the epoch of a failed task,
 * declining every trigger, with nothing left to start another recovery.
 */
export const EPOCH_BUMP_RETRY: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 2000, multiplier: 2, jitter: 0.2 };

/** The rollbacks of one job. */
export class JobRollback {
  private readonly deps: JobRollbackDeps;
  private readonly restartBackoff: RestartBackoff;
  private recovering: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(deps: JobRollbackDeps) {
    this.deps = deps;
    this.restartBackoff = new RestartBackoff(deps.now, deps.log);
  }

  /** True while a rollback runs: no checkpoint may start. */
  get inProgress(): boolean {
    return this.recovering !== undefined;
  }

  /** Resolves when the rollback under way, if any, has ended (it never rejects). */
  async settled(): Promise<void> {
    await this.recovering;
  }

  /** A checkpoint completed: the next recovery starts without backing off. */
  completed(): void {
    this.restartBackoff.reset();
  }

  /** The coordinator stops: a recovery backing off ends its wait and stops there. */
  stop(): void {
    this.restartBackoff.cancel();
    this.stopping.abort();
  }

  /**
   * Rolls the job back to the recovery's checkpoint (the latest, or the
   * restore point in force): pending checkpoints abort, the epoch rises in
   * etcd, and `recover` is broadcast. Joins the rollback under way, if any.
   */
  recover(why: string): Promise<void> {
    // A stopped coordinator leaves the job to the next one.
    if (this.deps.stopped()) return Promise.resolve();
    if (this.recovering === undefined) void this.start({ why, reason: 'ABORT_REASON_TASK_FAILURE' });
    return this.recovering ?? Promise.resolve();
  }

  /**
   * An operator's restore to retained checkpoint `checkpointId` (0: the
   * latest): a recovery whose pending checkpoints abort with JOB_RESTORED,
   * whose epoch bump stores the checkpoint as the restore point, and whose
   * tasks restore from it. Refused without changing anything while a
   * recovery is under way (TASKS_NOT_READY), for a canceled job
   * (JOB_CANCELED) or a checkpoint that is not retained
   * (UNKNOWN_CHECKPOINT).
   */
  async restore(checkpointId: number): Promise<RollBack> {
    const { tracker } = this.deps;
    if (this.recovering !== undefined) {
      throw new CkptError('TASKS_NOT_READY', 'the job is recovering; restore it once it has its new epoch', {
        jobId: tracker.jobId,
      });
    }
    const target = tracker.checkRestore(checkpointId);
    if (this.deps.stopped()) throw this.stoppedBeforeRestore();
    const why = `restore to checkpoint ${target} requested`;
    const done = await this.start({ why, reason: 'ABORT_REASON_JOB_RESTORED', restoreTo: checkpointId });
    if (done === undefined) throw this.stoppedBeforeRestore();
    return done;
  }

  private stoppedBeforeRestore(): CkptError {
    return new CkptError('SHUTTING_DOWN', 'the coordinator stopped before the restore began', {
      jobId: this.deps.tracker.jobId,
      retryable: true,
    });
  }

  /**
   * Starts the job's one rollback. `recovering` follows it and never
   * rejects; the returned promise rejects with the rollback's error.
   */
  private start(plan: RollBackPlan): Promise<RollBack | undefined> {
    const { log } = this.deps;
    const run = this.rollBack(plan);
    this.recovering = run
      .then(
        () => undefined,
        (err: unknown) => {
          if (err instanceof LeadershipLostError) this.deps.onLeadershipLost(err);
          else if (plan.restoreTo !== undefined) log.warn({ err }, 'job restore failed');
          else log.error({ err }, 'job recovery failed');
        },
      )
      .finally(() => {
        this.recovering = undefined;
        this.deps.arm();
      });
    return run;
  }

  /** The rollback itself; undefined when the coordinator stopped first. */
  private async rollBack(plan: RollBackPlan): Promise<RollBack | undefined> {
    const { tracker, log } = this.deps;
    log.warn({ why: plan.why }, 'job recovery started');
    await this.deps.commits.settled();
    if (this.deps.stopped()) return undefined;
    if (plan.restoreTo === undefined) await this.restartBackoff.wait();
    if (this.deps.stopped()) return undefined;
    // A commit while waiting may have dropped the checkpoint: checked again before anything changes.
    let restoreTo = plan.restoreTo === undefined ? undefined : tracker.checkRestore(plan.restoreTo);
    if (!(await this.abortPending(plan))) return undefined;
    if (plan.restoreTo !== undefined) restoreTo = tracker.checkRestore(plan.restoreTo);
    const epoch = await this.bumpEpoch(restoreTo);
    if (epoch === undefined) return undefined;
    tracker.enterEpoch(epoch, restoreTo);
    const checkpointId = tracker.recoveryCheckpointId;
    await this.deps.broadcasts
      .recover(epoch, checkpointId)
      .catch((err: unknown) => log.warn({ err }, 'recover not broadcast; sessions still get their restore'));
    this.deps.attempts.restoreAll();
    log.info({ epoch, checkpointId }, 'job recovery: every task restores');
    this.deps.recovered(epoch, checkpointId);
    return { epoch, checkpointId };
  }

  /**
   * Aborts every pending checkpoint, and waits for those whose commit
   * began: no checkpoint of the old epoch may be pending when the new one
   * is entered. A commit can begin while the recovery waits (for the
   * commits in flight, or its restart backoff): the last acknowledgement
   * of a pending checkpoint arrives meanwhile. The abort leaves such a
   * checkpoint to its commit, and the epoch must not rise under it. No
   * checkpoint starts while a rollback runs, so this ends. False when the
   * coordinator stopped meanwhile.
   */
  private async abortPending(plan: RollBackPlan): Promise<boolean> {
    for (;;) {
      this.deps.abortAll(plan.reason, plan.why);
      if (this.deps.tracker.pendingCheckpoints().length === 0) return true;
      await this.deps.commits.settled();
      if (this.deps.stopped()) return false;
    }
  }

  /**
   * Raises the job's epoch in etcd; undefined when the coordinator stopped
   * first. A recovery tries again while etcd does not answer
   * (`EPOCH_BUMP_RETRY`), and bumps again from the stored epoch when its
   * own earlier bump went through unseen (STALE_EPOCH under the same
   * leadership: the guard would have refused a deposed coordinator). An
   * operator's restore fails at once instead: its caller sees the error.
   */
  private async bumpEpoch(restoreTo: number | undefined): Promise<number | undefined> {
    const { tracker, store, guard, log } = this.deps;
    for (let attempt = 0; ; attempt++) {
      try {
        return await store.bumpEpoch(tracker.jobId, tracker.epoch, guard, restoreTo);
      } catch (err) {
        if (restoreTo !== undefined || err instanceof LeadershipLostError) throw err;
        if (err instanceof StaleEpochError && err.current > tracker.epoch) {
          log.warn(
            { stored: err.current, epoch: tracker.epoch },
            'an earlier epoch bump went through unseen; bumping from it',
          );
          return store.bumpEpoch(tracker.jobId, err.current, guard);
        }
        if (!(err instanceof CkptError && err.retryable)) throw err;
        const delayMs = backoffDelayMs(EPOCH_BUMP_RETRY, attempt);
        log.warn({ err, attempt, retryInMs: delayMs }, 'epoch not raised; trying again');
        if (!(await this.sleep(delayMs))) return undefined;
      }
    }
  }

  /** Waits `ms`; false when the coordinator stopped meanwhile. */
  private sleep(ms: number): Promise<boolean> {
    const signal = this.stopping.signal;
    if (signal.aborted || this.deps.stopped()) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(!this.deps.stopped());
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
