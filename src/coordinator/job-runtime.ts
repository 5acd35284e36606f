/**
 * One job inside the coordinator: its `JobTracker` (the pure protocol) plus
 * what carries out the tracker's decisions: the timer (`job-timer.ts`), the
 * commits (`commit-pipeline.ts`), rollbacks (`job-rollback.ts`), attempts
 * (`attempt-control.ts`) and the NATS broadcasts (`job-broadcasts.ts`).
 * This class triggers, takes acknowledgements and declines, and aborts.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { AcceptedAcks } from '../core/ack-rules.js';
import type { Checkpoint, AbortCause, CheckpointInit } from '../core/checkpoint.js';
import { CkptError, type LeadershipLostError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore, ControlBus, LeaderGuard } from '../core/ports.js';
import { boundedSummary } from '../core/request-checks.js';
import type { Logger } from '../log/index.js';
import { AttemptControl } from './attempt-control.js';
import { CheckpointWaiters } from './checkpoint-waiters.js';
import { CommitPipeline, type CommitState } from './commit-pipeline.js';
import type { CheckpointEvents } from './events.js';
import { JobBroadcasts } from './job-broadcasts.js';
import { JobRollback, type RollBack } from './job-rollback.js';
import { JobStatistics, type CommitStatistics } from './job-statistics.js';
import { JobTimer } from './job-timer.js';
import type { CoordinatorObserver } from './observer.js';
import type { Session } from './sessions.js';

/** What a job runtime needs from the coordinator. */
export interface JobRuntimeDeps {
  store: CheckpointStore;
  bus: ControlBus;
  events: CheckpointEvents;
  logger: Logger;
  now: () => number;
  idBlockSize: number;
  /** The job's live worker sessions. */
  sessions: () => Session[];
  /** Fences every etcd write to this coordinator's leadership; none when it runs alone. */
  guard: LeaderGuard | undefined;
  /** The leader's term, sent with every control message and command. */
  term: number;
  /** A guarded write was refused: this coordinator is no longer the leader. */
  onLeadershipLost: (err: LeadershipLostError) => void;
  /** The job's records turned out unusable while it ran: the coordinator quarantines it. */
  onQuarantine: (why: string) => void;
  /** The state cleanup, for this job: commits and where acknowledged snapshots went. */
  state: CommitState & { acknowledged(tasks: readonly TaskSnapshot__Output[]): void };
  /** The job's statistics as etcd held them when it was loaded; undefined: they count from `statisticsSinceMs`. */
  statistics: StoredCheckpointStatistics__Output | undefined;
  statisticsSinceMs: number;
  /** Hears how long acknowledgements and commits took. */
  observer?: CoordinatorObserver;
}

/**
 * Longest abort message: declines of many tasks are summarised to it, so
 * that an abort always fits a NATS message and a summary an etcd request.
 */
export const MAX_ABORT_MESSAGE_BYTES = 8192;

/** A job's timers, commits and broadcasts around its tracker. */
export class JobRuntime {
  readonly tracker: JobTracker;
  /** Restore, ready and start of the job's attempts. */
  readonly attempts: AttemptControl;
  /** Counts, figures and history of the job's checkpoints, kept in etcd. */
  readonly statistics: JobStatistics;
  private readonly deps: JobRuntimeDeps;
  private readonly log: Logger;
  private readonly broadcasts: JobBroadcasts;
  private readonly timer: JobTimer;
  private readonly commits: CommitPipeline;
  private readonly rollback: JobRollback;
  private readonly waiters: CheckpointWaiters;
  private reservation: Promise<void> | undefined;
  private stopped = false;
  /** The periodic interval last in force, to log when an adaptive policy changes it. */
  private intervalMs: number;

  constructor(tracker: JobTracker, deps: JobRuntimeDeps) {
    this.tracker = tracker;
    this.deps = deps;
    this.intervalMs = tracker.interval.intervalMs;
    this.log = deps.logger.child({ component: 'job', jobId: tracker.jobId });
    this.waiters = new CheckpointWaiters(tracker.jobId);
    this.broadcasts = new JobBroadcasts({ jobId: tracker.jobId, bus: deps.bus, term: deps.term, log: this.log });
    this.attempts = new AttemptControl({
      tracker,
      store: deps.store,
      logger: deps.logger,
      sessions: deps.sessions,
      term: deps.term,
      recover: (why) => void this.recover(why),
      onStarted: () => this.arm(),
      quarantine: (why) => deps.onQuarantine(why),
    });
    // What the timer, the commits and the rollbacks share: the job, its adapters, and this runtime's abort and timer.
    const shared = {
      tracker,
      store: deps.store,
      guard: deps.guard,
      now: deps.now,
      log: this.log,
      broadcasts: this.broadcasts,
      onLeadershipLost: deps.onLeadershipLost,
      abort: (checkpoint: Checkpoint, reason: AbortCause, message: string) => this.abort(checkpoint, reason, message),
      arm: () => this.arm(),
      stopped: () => this.stopped,
    };
    this.timer = new JobTimer({
      ...shared,
      recovering: () => this.rollback.inProgress,
      trigger: () => this.trigger(false),
    });
    this.commits = new CommitPipeline({
      ...shared,
      state: {
        releasedShared: (tasks) => deps.state.releasedShared(tasks),
        committed: (manifest, subsumed) => {
          // The next recovery restores this checkpoint, most likely: from memory, not from etcd.
          this.attempts.committed(manifest);
          deps.state.committed(manifest, subsumed);
        },
      },
      finished: (checkpoint, committedWith) => this.finished(checkpoint, committedWith),
      statisticsFor: (summary, checkpoint) => this.statistics.forCommit(summary, checkpoint),
      observeCommit: (durationMs) => deps.observer?.committed(tracker.jobId, durationMs),
    });
    this.statistics = new JobStatistics({
      jobId: tracker.jobId,
      store: deps.store,
      guard: deps.guard,
      log: this.log,
      inOrder: (write) => this.commits.inOrder(write),
      onLeadershipLost: deps.onLeadershipLost,
      stored: deps.statistics,
      sinceMs: deps.statisticsSinceMs,
    });
    this.rollback = new JobRollback({
      ...shared,
      commits: this.commits,
      attempts: this.attempts,
      abortAll: (reason, message) => this.abortAll(reason, message),
      recovered: (epoch, checkpointId) => {
        this.statistics.restored(epoch, checkpointId, deps.now());
        this.deps.events.publishRecovery({ jobId: this.jobId, epoch, checkpointId });
      },
    });
  }

  get jobId(): string {
    return this.tracker.jobId;
  }

  /** Starts the job's timers. */
  start(): void {
    this.arm();
  }

  /**
   * Stops timers; pending checkpoints are left to the next coordinator.
   * With `why`, calls waiting for a checkpoint fail with UNAVAILABLE (not
   * NOT_LEADER or SHUTTING_DOWN: their trigger did happen).
   */
  stop(why?: string): void {
    this.stopped = true;
    this.timer.clear();
    this.statistics.stop();
    this.rollback.stop();
    if (why !== undefined) this.waiters.stopped(why);
  }

  /** Waits for the job's commits in flight. */
  async settled(): Promise<void> {
    await this.commits.settled();
    await this.rollback.settled();
  }

  /** Sets the one timer to the next deadline or periodic trigger. */
  arm(): void {
    this.timer.arm();
  }

  // --- trigger --------------------------------------------------------------

  /**
   * Starts a checkpoint now and sends the trigger to the sources. Never
   * while a recovery runs, also one that began while ids were reserved: a
   * worker that attached meanwhile has its welcome of this epoch but no
   * StartCommand, and a trigger of an epoch implies its StartCommand
   * (proto/PROTOCOL.md, R1).
   */
  async trigger(manual: boolean, snapshotType?: CheckpointInit['snapshotType']): Promise<Checkpoint> {
    this.checkNotRecovering();
    this.tracker.checkCanTrigger();
    if (!this.tracker.ids.hasReserved()) {
      await this.reserveIds();
      this.checkNotRecovering();
    }
    const checkpoint = this.tracker.trigger(this.deps.now(), manual, snapshotType);
    this.log.debug({ checkpointId: checkpoint.id, manual }, 'checkpoint triggered');
    this.deps.events.publish(checkpoint.summary());
    this.arm();
    await this.broadcasts.trigger(checkpoint).catch((err: unknown) => {
      // No source will ever see it: end it now rather than at its timeout.
      this.log.warn({ err, checkpointId: checkpoint.id }, 'trigger not published');
      this.abort(checkpoint, 'ABORT_REASON_TRIGGER_FAILED', `trigger not published: ${CkptError.from(err).message}`);
    });
    return checkpoint;
  }

  private checkNotRecovering(): void {
    if (this.rollback.inProgress) {
      throw new CkptError('TASKS_NOT_READY', 'the job is recovering', { jobId: this.jobId });
    }
  }

  /** One etcd write reserves the next block of ids; concurrent triggers share it. */
  private async reserveIds(): Promise<void> {
    this.reservation ??= (async () => {
      const floor = this.tracker.ids.floorToReserve(this.deps.idBlockSize);
      await this.deps.store.reserveIds(this.jobId, floor, this.deps.guard);
      this.tracker.ids.reserved(floor);
      this.log.debug({ floor }, 'checkpoint ids reserved');
    })().finally(() => {
      this.reservation = undefined;
    });
    await this.reservation;
  }

  /** Resolves when the checkpoint completes or aborts. */
  waitFor(checkpointId: number): Promise<CheckpointSummary__Output> {
    const known = this.tracker.find(checkpointId);
    if (known !== undefined && known.status !== 'PENDING') return Promise.resolve(known.summary());
    if (this.stopped) {
      const message = `the coordinator stopped before checkpoint ${checkpointId} finished`;
      return Promise.reject(
        new CkptError('UNAVAILABLE', message, { jobId: this.jobId, checkpointId, retryable: true }),
      );
    }
    return this.waiters.wait(checkpointId);
  }

  /** A checkpoint completed or aborted: watchers and waiting callers hear of it. */
  private finished(checkpoint: Checkpoint, committedWith?: CommitStatistics): void {
    const summary = checkpoint.summary();
    this.statistics.finished(checkpoint, committedWith);
    if (checkpoint.status === 'COMPLETED') {
      this.rollback.completed();
      this.logIntervalChange();
    }
    this.deps.events.publish(summary);
    this.waiters.finished(summary);
  }

  /** Operators see each move of an adaptive interval, with the figures behind it. */
  private logIntervalChange(): void {
    const { intervalMs, reason } = this.tracker.interval;
    if (intervalMs === this.intervalMs) return;
    this.log.info({ fromIntervalMs: this.intervalMs, intervalMs, reason }, 'checkpoint interval changed');
    this.intervalMs = intervalMs;
  }

  // --- acknowledgements -----------------------------------------------------

  /** Records acknowledgements; commits when the last task has acknowledged. */
  acknowledge(
    call: { epoch: number; checkpointId: number; workerId: string },
    snapshots: readonly TaskSnapshot__Output[],
  ): AcceptedAcks {
    const { checkpoint, duplicates } = this.tracker.acknowledge(call, snapshots, this.deps.now());
    const recorded = snapshots.length - duplicates;
    if (recorded > 0) {
      this.prepareForCommit(snapshots);
      this.deps.observer?.acknowledged(this.jobId, recorded, this.deps.now() - checkpoint.init.triggeredAtMs);
    }
    if (checkpoint.fullyAcknowledged && !checkpoint.committing && checkpoint.status === 'PENDING') {
      this.commits.enqueue(checkpoint);
    }
    return { checkpoint, duplicates };
  }

  /**
   * Lets the store encode accepted snapshots now; a snapshot it cannot
   * encode is left to the commit, which refuses it with its reason.
   */
  private prepareForCommit(snapshots: readonly TaskSnapshot__Output[]): void {
    try {
      this.deps.store.prepareSnapshots?.(snapshots);
    } catch (err) {
      this.log.debug({ err }, 'acknowledged snapshots not encoded ahead of the commit');
    }
  }

  /** A task declined: the checkpoint aborts. */
  decline(
    call: { epoch: number; checkpointId: number; workerId: string },
    declines: ReadonlyArray<{ taskId: string; message: string }>,
  ): void {
    const checkpoint = this.tracker.checkCall({ ...call, taskIds: declines.map((d) => d.taskId) });
    if (checkpoint.status !== 'PENDING') return;
    if (checkpoint.committing) {
      throw new CkptError('CHECKPOINT_COMPLETED', `checkpoint ${checkpoint.id} is fully acknowledged and committing`, {
        jobId: this.jobId,
        checkpointId: checkpoint.id,
      });
    }
    const parts = declines.map((d) => `${d.taskId}: ${d.message || 'no reason given'}`);
    this.abort(checkpoint, 'ABORT_REASON_DECLINED', boundedSummary(parts, MAX_ABORT_MESSAGE_BYTES));
  }

  // --- abort and rollback ---------------------------------------------------

  /** Aborts a pending checkpoint and broadcasts it; may start a recovery. */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string): void {
    if (checkpoint.status !== 'PENDING') return;
    // Its uploads become orphans: the sweeps look where they went.
    this.deps.state.acknowledged(checkpoint.acknowledged());
    const failed = this.tracker.abort(checkpoint, reason, message, this.deps.now());
    this.log.info({ checkpointId: checkpoint.id, reason, message }, 'checkpoint aborted');
    this.finished(checkpoint);
    this.broadcasts.abort(checkpoint, reason, message);
    if (failed) void this.recover(`more than ${this.tracker.policy.tolerableFailures} consecutive checkpoint failures`);
    this.arm();
  }

  /** Aborts every pending checkpoint that is not committing. */
  abortAll(reason: AbortCause, message: string): void {
    for (const checkpoint of this.tracker.pendingCheckpoints()) {
      if (!checkpoint.committing) this.abort(checkpoint, reason, message);
    }
  }

  /** Rolls the job back to the recovery's checkpoint; see `JobRollback.recover`. */
  recover(why: string): Promise<void> {
    return this.rollback.recover(why);
  }

  /** An operator's restore to a retained checkpoint (0: the latest); see `JobRollback.restore`. */
  restore(checkpointId: number): Promise<RollBack> {
    return this.rollback.restore(checkpointId);
  }
}
