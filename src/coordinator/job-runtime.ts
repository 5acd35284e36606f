/**
 * One job inside the coordinator: its `JobTracker` (the pure protocol) plus
 * the timers, the etcd commits and the NATS broadcasts that carry out what
 * the tracker decides. Commits of one job run one at a time, in order.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { periodicTriggerRetryMs } from '../core/backoff.js';
import type { Checkpoint, AbortCause, CheckpointInit } from '../core/checkpoint.js';
import { CkptError, hasReason, LeadershipLostError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore, ControlBus, LeaderGuard } from '../core/ports.js';
import { boundedSummary } from '../core/request-checks.js';
import type { Logger } from '../log/index.js';
import { AttemptControl } from './attempt-control.js';
import { RestartBackoff } from './restart-backoff.js';
import type { CheckpointEvents } from './events.js';
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
}

/**
 * Longest abort message: declines of many tasks are summarised to it, so
 * that an abort always fits a NATS message and a summary an etcd request.
 */
export const MAX_ABORT_MESSAGE_BYTES = 8192;

type Waiter = { resolve: (s: CheckpointSummary__Output) => void; reject: (err: CkptError) => void };

/** What a rollback does: why, how pending checkpoints abort, and an operator's checkpoint (0: the latest). */
interface RollBackPlan {
  why: string;
  reason: AbortCause;
  restoreTo?: number;
}

/** The epoch a rollback moved the job to, and the checkpoint every task restores from in it. */
export interface RollBack {
  epoch: number;
  checkpointId: number;
}

/** A job's timers, commits and broadcasts around its tracker. */
export class JobRuntime {
  readonly tracker: JobTracker;
  /** Restore, ready and start of the job's attempts. */
  readonly attempts: AttemptControl;
  private readonly deps: JobRuntimeDeps;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private commitChain: Promise<void> = Promise.resolve();
  private reservation: Promise<void> | undefined;
  /**
   * Whether etcd may hold manifest parts of the job. False once a
   * collection left none; a commit that wrote parts, or failed after
   * perhaps writing some, sets it again. While false, commits of inline
   * manifests skip the collection (a listing of the job's keys).
   */
  private partsMayExist = true;
  private stopped = false;
  private recovering: Promise<void> | undefined;
  /** A periodic trigger is on its way (reserving ids, say): no second one. */
  private periodicInFlight = false;
  /** Periodic triggers that failed in a row, and when the next may be tried. */
  private periodicFailures = 0;
  private periodicRetryAtMs = 0;
  private readonly waiters = new Map<number, Waiter[]>();
  private readonly restartBackoff: RestartBackoff;

  constructor(tracker: JobTracker, deps: JobRuntimeDeps) {
    this.tracker = tracker;
    this.deps = deps;
    this.log = deps.logger.child({ component: 'job', jobId: tracker.jobId });
    this.restartBackoff = new RestartBackoff(deps.now, this.log);
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
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.restartBackoff.cancel();
    if (why === undefined) return;
    for (const [checkpointId, waiters] of this.waiters) {
      const message = `the coordinator stopped before checkpoint ${checkpointId} finished: ${why}`;
      const error = new CkptError('UNAVAILABLE', message, { jobId: this.jobId, checkpointId, retryable: true });
      for (const waiter of waiters) waiter.reject(error);
    }
    this.waiters.clear();
  }

  /** Waits for the job's commits in flight. */
  async settled(): Promise<void> {
    await this.commitChain;
    await this.recovering;
  }

  // --- timers ---------------------------------------------------------------

  /** Sets the one timer to the next deadline or periodic trigger. */
  arm(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const due = [this.tracker.nextDeadlineMs(), this.periodicDueMs()].filter((t): t is number => t !== undefined);
    if (due.length === 0) return;
    const delay = Math.max(0, Math.min(...due) - this.deps.now());
    this.timer = setTimeout(() => this.onTimer(), Math.min(delay, 2 ** 31 - 1));
  }

  private periodicDueMs(): number | undefined {
    const due = this.tracker.nextPeriodicDueAtMs();
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
    const backoffMs = periodicTriggerRetryMs(this.periodicFailures, this.tracker.policy.intervalMs);
    this.periodicRetryAtMs = this.deps.now() + backoffMs;
    this.log.error({ err, failures: this.periodicFailures, retryInMs: backoffMs }, 'periodic trigger failed');
  }

  private onTimer(): void {
    this.timer = undefined;
    const now = this.deps.now();
    for (const checkpoint of this.tracker.expired(now)) {
      this.abort(
        checkpoint,
        'ABORT_REASON_TIMEOUT',
        `not acknowledged by ${checkpoint.init.taskIds.length - checkpoint.acknowledgedTasks} tasks within ${this.tracker.policy.timeoutMs} ms`,
      );
    }
    const periodic = this.periodicDueMs();
    if (periodic !== undefined && periodic <= now && this.recovering === undefined) {
      this.periodicInFlight = true;
      this.trigger(false)
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
    this.arm();
  }

  // --- trigger --------------------------------------------------------------

  /** Starts a checkpoint now and sends the trigger to the sources. */
  async trigger(manual: boolean, snapshotType?: CheckpointInit['snapshotType']): Promise<Checkpoint> {
    if (this.recovering !== undefined) {
      throw new CkptError('TASKS_NOT_READY', 'the job is recovering', { jobId: this.jobId });
    }
    this.tracker.checkCanTrigger();
    if (!this.tracker.ids.hasReserved()) await this.reserveIds();
    const checkpoint = this.tracker.trigger(this.deps.now(), manual, snapshotType);
    this.log.debug({ checkpointId: checkpoint.id, manual }, 'checkpoint triggered');
    this.deps.events.publish(checkpoint.summary());
    this.arm();
    await this.deps.bus
      .publishTrigger({
        jobId: this.jobId,
        checkpointId: checkpoint.id,
        epoch: checkpoint.init.epoch,
        snapshotType: checkpoint.init.snapshotType,
        triggeredAtMs: checkpoint.init.triggeredAtMs,
        deadlineMs: checkpoint.init.deadlineMs,
        term: this.deps.term,
      })
      .catch((err: unknown) => {
        // No source will ever see it: end it now rather than at its timeout.
        this.log.warn({ err, checkpointId: checkpoint.id }, 'trigger not published');
        this.abort(checkpoint, 'ABORT_REASON_TRIGGER_FAILED', `trigger not published: ${CkptError.from(err).message}`);
      });
    return checkpoint;
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
    return new Promise((resolve, reject) => {
      this.waiters.set(checkpointId, [...(this.waiters.get(checkpointId) ?? []), { resolve, reject }]);
    });
  }

  private finished(checkpoint: Checkpoint): void {
    const summary = checkpoint.summary();
    if (checkpoint.status === 'COMPLETED') this.restartBackoff.reset();
    this.deps.events.publish(summary);
    for (const waiter of this.waiters.get(checkpoint.id) ?? []) waiter.resolve(summary);
    this.waiters.delete(checkpoint.id);
  }

  // --- acknowledgements -----------------------------------------------------

  /** Records acknowledgements; commits when the last task has acknowledged. */
  acknowledge(
    call: { epoch: number; checkpointId: number; workerId: string },
    snapshots: readonly TaskSnapshot__Output[],
  ) {
    const { checkpoint, duplicates } = this.tracker.acknowledge(call, snapshots);
    if (checkpoint.fullyAcknowledged && !checkpoint.committing && checkpoint.status === 'PENDING') {
      checkpoint.beginCommit();
      this.commitChain = this.commitChain.then(() => this.commit(checkpoint));
    }
    return { checkpoint, duplicates };
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

  // --- commit and abort -----------------------------------------------------

  private async commit(checkpoint: Checkpoint): Promise<void> {
    if (checkpoint.status !== 'PENDING') return;
    const later = this.tracker.completedBefore(checkpoint);
    if (later !== undefined) {
      this.abort(checkpoint, 'ABORT_REASON_SUBSUMED', `checkpoint ${later} completed first`);
      return;
    }
    const now = this.deps.now();
    const manifest = checkpoint.manifest(now);
    const subsumed = this.tracker.subsumedBy(checkpoint.id);
    const summary = { ...checkpoint.summary(), state: 'CHECKPOINT_STATE_COMPLETED' as const, finishedAtMs: now };
    let result: { manifestBytes: number; manifestParts: number };
    try {
      result = await this.deps.store.commit({ manifest, summary, subsumedCheckpointIds: subsumed }, this.deps.guard);
    } catch (err) {
      this.partsMayExist = true;
      if (err instanceof LeadershipLostError) {
        this.deps.onLeadershipLost(err);
        this.abort(checkpoint, 'ABORT_REASON_COMMIT_FAILED', err.message);
        return;
      }
      const committed = await this.resolveUnknownOutcome(checkpoint, err);
      if (committed === undefined) {
        this.abort(checkpoint, 'ABORT_REASON_COMMIT_FAILED', CkptError.from(err).message);
        return;
      }
      result = committed;
    }
    this.completeCommitted(checkpoint, now, result, subsumed.length > 0);
  }

  /**
   * After a failed commit call: if etcd did not answer, the transaction may
   * have happened. Reads etcd to find out; never deletes anything.
   */
  private async resolveUnknownOutcome(
    checkpoint: Checkpoint,
    err: unknown,
  ): Promise<{ manifestBytes: number; manifestParts: number } | undefined> {
    if (!hasReason(err, 'UNAVAILABLE', 'INTERNAL')) return undefined;
    try {
      const summaries = await this.deps.store.listSummaries(this.jobId);
      const found = summaries.find((s) => s.checkpointId === checkpoint.id);
      if (found !== undefined)
        this.log.warn({ checkpointId: checkpoint.id }, 'commit answered with an error but is in etcd');
      return found;
    } catch (readErr) {
      this.log.error({ err: readErr, checkpointId: checkpoint.id }, 'commit outcome unknown and etcd unreadable');
      return undefined;
    }
  }

  private completeCommitted(
    checkpoint: Checkpoint,
    now: number,
    result: { manifestBytes: number; manifestParts: number },
    deletedSome: boolean,
  ): void {
    if (checkpoint.status !== 'PENDING') return;
    const older = this.tracker.complete(checkpoint, now, result.manifestBytes, result.manifestParts);
    // Tasks (sinks committing their output) first, then watchers and waiting callers, then the log.
    this.publish(() =>
      this.deps.bus.publishComplete({
        jobId: this.jobId,
        checkpointId: checkpoint.id,
        epoch: checkpoint.init.epoch,
        completedAtMs: now,
        term: this.deps.term,
      }),
    );
    this.finished(checkpoint);
    this.log.info(
      {
        checkpointId: checkpoint.id,
        tasks: checkpoint.init.taskIds.length,
        manifestBytes: result.manifestBytes,
        manifestParts: result.manifestParts,
        durationMs: now - checkpoint.init.triggeredAtMs,
      },
      'checkpoint completed',
    );
    for (const old of older) this.abort(old, 'ABORT_REASON_SUBSUMED', `checkpoint ${checkpoint.id} completed first`);
    if (result.manifestParts > 0) this.partsMayExist = true;
    if (this.partsMayExist && (deletedSome || result.manifestParts > 0)) this.collectGarbage();
    this.arm();
  }

  private collectGarbage(): void {
    this.commitChain = this.commitChain.then(async () => {
      try {
        const { deleted, remaining } = await this.deps.store.collectGarbage(this.jobId);
        if (deleted > 0) this.log.debug({ deleted, remaining }, 'manifest parts collected');
        // Commits queue behind the collection, so none wrote parts meanwhile.
        if (remaining === 0) this.partsMayExist = false;
      } catch (err) {
        this.log.warn({ err }, 'manifest part collection failed; it runs again after the next commit');
      }
    });
  }

  /** Aborts a pending checkpoint and broadcasts it; may start a recovery. */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string): void {
    if (checkpoint.status !== 'PENDING') return;
    const failed = this.tracker.abort(checkpoint, reason, message, this.deps.now());
    this.log.info({ checkpointId: checkpoint.id, reason, message }, 'checkpoint aborted');
    this.finished(checkpoint);
    this.publish(() =>
      this.deps.bus.publishAbort({
        jobId: this.jobId,
        checkpointId: checkpoint.id,
        epoch: checkpoint.init.epoch,
        reason,
        message,
        term: this.deps.term,
      }),
    );
    if (failed) void this.recover(`more than ${this.tracker.policy.tolerableFailures} consecutive checkpoint failures`);
    this.arm();
  }

  /** Aborts every pending checkpoint, including one that is committing only if `force`. */
  abortAll(reason: AbortCause, message: string): void {
    for (const checkpoint of this.tracker.pendingCheckpoints()) {
      if (!checkpoint.committing) this.abort(checkpoint, reason, message);
    }
  }

  /**
   * Rolls the job back to the recovery's checkpoint (the latest, or the
   * restore point in force): pending checkpoints abort, the epoch rises in
   * etcd, and `recover` is broadcast.
   */
  recover(why: string): Promise<void> {
    // A stopped coordinator leaves the job to the next one.
    if (this.stopped) return Promise.resolve();
    if (this.recovering === undefined) void this.startRollBack({ why, reason: 'ABORT_REASON_TASK_FAILURE' });
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
    if (this.recovering !== undefined) {
      throw new CkptError('TASKS_NOT_READY', 'the job is recovering; restore it once it has its new epoch', {
        jobId: this.jobId,
      });
    }
    const target = this.tracker.checkRestore(checkpointId);
    if (this.stopped) throw this.stoppedBeforeRestore();
    const why = `restore to checkpoint ${target} requested`;
    const done = await this.startRollBack({ why, reason: 'ABORT_REASON_JOB_RESTORED', restoreTo: checkpointId });
    if (done === undefined) throw this.stoppedBeforeRestore();
    return done;
  }

  private stoppedBeforeRestore(): CkptError {
    return new CkptError('SHUTTING_DOWN', 'the coordinator stopped before the restore began', {
      jobId: this.jobId,
      retryable: true,
    });
  }

  /**
   * Starts the job's one rollback. `recovering` follows it and never
   * rejects; the returned promise rejects with the rollback's error.
   */
  private startRollBack(plan: RollBackPlan): Promise<RollBack | undefined> {
    const run = this.rollBack(plan);
    this.recovering = run
      .then(
        () => undefined,
        (err: unknown) => {
          if (err instanceof LeadershipLostError) this.deps.onLeadershipLost(err);
          else if (plan.restoreTo !== undefined) this.log.warn({ err }, 'job restore failed');
          else this.log.error({ err }, 'job recovery failed');
        },
      )
      .finally(() => {
        this.recovering = undefined;
        this.arm();
      });
    return run;
  }

  /** The rollback itself; undefined when the coordinator stopped first. */
  private async rollBack(plan: RollBackPlan): Promise<RollBack | undefined> {
    this.log.warn({ why: plan.why }, 'job recovery started');
    await this.commitChain;
    if (this.stopped) return undefined;
    if (plan.restoreTo === undefined) await this.restartBackoff.wait();
    if (this.stopped) return undefined;
    // A commit while waiting may have dropped the checkpoint: checked again before anything changes.
    const restoreTo = plan.restoreTo === undefined ? undefined : this.tracker.checkRestore(plan.restoreTo);
    this.abortAll(plan.reason, plan.why);
    const epoch = await this.deps.store.bumpEpoch(this.jobId, this.tracker.epoch, this.deps.guard, restoreTo);
    this.tracker.enterEpoch(epoch, restoreTo);
    const checkpointId = this.tracker.recoveryCheckpointId;
    await this.deps.bus
      .publishRecover({ jobId: this.jobId, epoch, checkpointId, term: this.deps.term })
      .catch((err: unknown) => this.log.warn({ err }, 'recover not broadcast; sessions still get their restore'));
    this.attempts.restoreAll();
    this.log.info({ epoch, checkpointId }, 'job recovery: every task restores');
    return { epoch, checkpointId };
  }

  private publish(send: () => Promise<void>): void {
    send().catch((err: unknown) => this.log.error({ err }, 'broadcast failed'));
  }
}
