/**
 * The checkpoint protocol of one job, as a pure state machine: which tasks
 * are attached, which checkpoints are pending, when the next one is due,
 * which acknowledgements to accept, and what retention subsumes. It does no
 * I/O and reads no clock; the coordinator feeds it times and carries out
 * what it decides against etcd and NATS. The rules themselves live beside
 * it: `task-roster.ts` (attachments and readiness), `trigger-schedule.ts`
 * (when a checkpoint may start), `ack-rules.ts` (which calls are accepted)
 * and `checkpoint-outcomes.ts` (commits, subsumption, failures).
 */
import type { JobCheckpointing__Output } from '../gen/ckpt/v1/JobCheckpointing.js';
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState__Output } from '../gen/ckpt/v1/JobState.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { IntervalChoice } from './adaptive-interval.js';
import { acceptAcks, checkCall, DEFAULT_ACK_RULES, type AckRules, type CallScope } from './ack-rules.js';
import type { AcceptedAcks, CheckpointCall } from './ack-rules.js';
import { Checkpoint, type AbortCause, type CheckpointInit } from './checkpoint.js';
import { CommittedCheckpoints, FailureStreak } from './checkpoint-outcomes.js';
import { CkptError } from './errors.js';
import { IdAllocator } from './id-allocator.js';
import { JobCheckpoints } from './job-checkpoints.js';
import { resolvePolicy, type ResolvedPolicy } from './policy.js';
import { recoveryCheckpointId, restorePointInForce, restoreTarget, type RestorePoint } from './restore-point.js';
import { TaskRoster, type JobAttempt, type TakenTask } from './task-roster.js';
import { mayTrigger, triggerRefusal, TriggerSchedule } from './trigger-schedule.js';

export type { JobAttempt } from './task-roster.js';

/** What the tracker starts from: the job as stored in etcd. */
export interface JobTrackerInit {
  spec: JobSpec__Output;
  state: JobState__Output;
  createdAtMs: number;
  epoch: number;
  latestCheckpointId: number;
  /** The epoch the latest checkpoint was committed in. @default 0 */
  latestCheckpointEpoch?: number;
  /** The job's last restore to a checkpoint an operator chose, if any. */
  restorePoint?: RestorePoint;
  idFloor: number;
  retainedCheckpointIds: number[];
  historySize?: number;
  /** `restoring` for a job just created, `resuming` for one loaded from etcd. */
  attempt: Exclude<JobAttempt, 'running'>;
  /** What acknowledgements are checked against. @default DEFAULT_ACK_RULES */
  ackRules?: AckRules;
}

/** The per-job checkpoint state machine. */
export class JobTracker {
  readonly spec: JobSpec__Output;
  readonly policy: ResolvedPolicy;
  readonly createdAtMs: number;
  readonly ids: IdAllocator;
  private stateValue: JobState__Output;
  private epochValue: number;
  private restorePointValue: RestorePoint | undefined;
  private readonly committed: CommittedCheckpoints;
  private readonly failures: FailureStreak;
  private readonly checkpoints: JobCheckpoints;
  private readonly roster: TaskRoster;
  private readonly schedule: TriggerSchedule;
  private readonly sources: readonly string[];
  private readonly taskIds: readonly string[];
  /** `taskIds` as a set, shared by the roster and every checkpoint. */
  private readonly taskSet: ReadonlySet<string>;
  private readonly ackRules: AckRules;
  /** Holders of `holdPeriodic`: no periodic checkpoint starts while there are any. */
  private periodicHolds = 0;

  constructor(init: JobTrackerInit) {
    this.spec = init.spec;
    this.policy = resolvePolicy(init.spec.policy);
    this.createdAtMs = init.createdAtMs;
    this.stateValue = init.state;
    this.epochValue = init.epoch;
    const latest = { checkpointId: init.latestCheckpointId, epoch: init.latestCheckpointEpoch ?? 0 };
    this.committed = new CommittedCheckpoints(latest, init.retainedCheckpointIds, this.policy.retained);
    this.failures = new FailureStreak(this.policy.tolerableFailures, init.latestCheckpointId > 0);
    this.restorePointValue = init.restorePoint;
    this.ids = new IdAllocator(Math.max(init.idFloor, init.latestCheckpointId + 1));
    this.checkpoints = new JobCheckpoints(init.historySize);
    this.taskIds = init.spec.tasks.map((t) => t.taskId);
    this.taskSet = new Set(this.taskIds);
    this.roster = new TaskRoster(init.spec.jobId, this.taskSet, init.attempt);
    this.schedule = new TriggerSchedule(this.policy);
    this.ackRules = init.ackRules ?? DEFAULT_ACK_RULES;
    this.sources = init.spec.tasks.filter((t) => t.inputs.length === 0).map((t) => t.taskId);
  }

  get attempt(): JobAttempt {
    return this.roster.attempt;
  }
  get readyTasks(): number {
    return this.roster.readyCount;
  }

  get jobId(): string {
    return this.spec.jobId;
  }
  get state(): JobState__Output {
    return this.stateValue;
  }
  get epoch(): number {
    return this.epochValue;
  }
  get latestCheckpointId(): number {
    return this.committed.latest.checkpointId;
  }
  get retainedCheckpointIds(): readonly number[] {
    return this.committed.retained;
  }
  /** The restore point while recoveries restore from it, else undefined. */
  get restorePoint(): RestorePoint | undefined {
    const point = this.restorePointValue;
    return restorePointInForce(this.committed.latest, point) ? point : undefined;
  }
  /** The checkpoint a recovery restores from now: the restore point in force, else the latest. */
  get recoveryCheckpointId(): number {
    return recoveryCheckpointId(this.committed.latest, this.restorePointValue);
  }
  get attachedTasks(): number {
    return this.roster.attachedCount;
  }
  get sourceTaskIds(): readonly string[] {
    return this.sources;
  }

  /** The per-job view: Idle, Checkpointing or Checkpointed. */
  get checkpointing(): JobCheckpointing__Output {
    if (this.checkpoints.pendingCount > 0) return 'JOB_CHECKPOINTING_CHECKPOINTING';
    return this.failures.lastOutcome === 'completed' ? 'JOB_CHECKPOINTING_CHECKPOINTED' : 'JOB_CHECKPOINTING_IDLE';
  }

  /** Pending checkpoints, oldest first. */
  pendingCheckpoints(): Checkpoint[] {
    return this.checkpoints.pendingCheckpoints();
  }

  /** A pending or remembered checkpoint. */
  find(checkpointId: number): Checkpoint | undefined {
    return this.checkpoints.find(checkpointId);
  }

  /** Pending and remembered checkpoints, newest first. */
  known(): Checkpoint[] {
    return this.checkpoints.known();
  }

  // --- sessions -----------------------------------------------------------

  /** Attaches tasks to a worker; all or none. */
  attach(workerId: string, taskIds: readonly string[]): void {
    this.requireRunning();
    this.roster.attach(workerId, taskIds);
  }

  /**
   * The first of `taskIds` another worker has attached, or undefined when
   * `workerId` may attach them all now. Throws what `attach` throws for
   * anything else (a canceled job, unknown or repeated tasks).
   */
  takenTask(workerId: string, taskIds: readonly string[]): TakenTask | undefined {
    this.requireRunning();
    return this.roster.takenTask(workerId, taskIds);
  }

  /** Detaches every task of a worker; returns the task ids it had. */
  detach(workerId: string): string[] {
    return this.roster.detach(workerId);
  }

  allTasksAttached(): boolean {
    return this.roster.allAttached();
  }

  /** Task ids a worker has attached. */
  tasksOf(workerId: string): string[] {
    return this.roster.tasksOf(workerId);
  }

  /**
   * Records that a worker's tasks are ready in `epoch` (restored, or found
   * still running while resuming). Reports of another epoch or of tasks the
   * worker has not attached are ignored. Returns true when this makes every
   * task ready: the attempt is then `running` and the caller tells the
   * workers to start.
   */
  markReady(workerId: string, epoch: number, taskIds: readonly string[]): boolean {
    return epoch === this.epochValue && this.roster.markReady(workerId, taskIds);
  }

  // --- triggering ---------------------------------------------------------

  /**
   * Why a checkpoint cannot start now, or undefined when it can: the one
   * rule for manual and periodic triggers alike (see `triggerRefusal` in
   * `trigger-schedule.ts`).
   */
  triggerRefusal(): CkptError | undefined {
    return triggerRefusal(this.triggerScope());
  }

  private triggerScope(): Parameters<typeof triggerRefusal>[0] {
    return {
      jobId: this.jobId,
      state: this.stateValue,
      epoch: this.epochValue,
      roster: this.roster,
      pending: this.checkpoints.pendingCount,
      maxConcurrent: this.policy.maxConcurrent,
    };
  }

  /** Throws `triggerRefusal()`, if any. */
  checkCanTrigger(): void {
    const refusal = this.triggerRefusal();
    if (refusal !== undefined) throw refusal;
  }

  /**
   * When the next periodic checkpoint is due, or undefined when periodic
   * checkpoints are off or no checkpoint may start now (`triggerRefusal`).
   * The time may be in the past.
   */
  nextPeriodicDueAtMs(): number | undefined {
    if (this.stateValue !== 'JOB_STATE_RUNNING' || this.periodicHolds > 0 || !mayTrigger(this.triggerScope())) {
      return undefined;
    }
    return this.schedule.nextDueAtMs();
  }

  /**
   * Holds periodic checkpoints back until the returned function is called
   * (a savepoint is being taken and stored, or the job stops with one).
   */
  holdPeriodic(): () => void {
    this.periodicHolds += 1;
    let released = false;
    return () => {
      if (!released) this.periodicHolds -= 1;
      released = true;
    };
  }

  /** The interval between periodic checkpoints in force now, and why (fixed, or adapted to their durations). */
  get interval(): IntervalChoice {
    return this.schedule.intervalChoice;
  }

  /** Starts a checkpoint with the next id; the id must be reserved. */
  trigger(nowMs: number, manual: boolean, snapshotType?: CheckpointInit['snapshotType']): Checkpoint {
    this.checkCanTrigger();
    const id = this.ids.take();
    const checkpoint = new Checkpoint({
      jobId: this.jobId,
      checkpointId: id,
      epoch: this.epochValue,
      snapshotType: this.schedule.triggered(nowMs, snapshotType),
      manual,
      triggeredAtMs: nowMs,
      deadlineMs: nowMs + this.policy.timeoutMs,
      taskIds: this.taskIds,
      taskSet: this.taskSet,
    });
    this.checkpoints.add(checkpoint);
    return checkpoint;
  }

  // --- acknowledgements ---------------------------------------------------

  /**
   * Validates an acknowledge or decline call against the job's state and
   * returns the pending checkpoint it concerns. Changes nothing.
   */
  checkCall(call: CheckpointCall): Checkpoint {
    return checkCall(this.callScope(), call);
  }

  /** Validates and records acknowledgements; all or none. */
  acknowledge(
    call: Omit<CheckpointCall, 'taskIds'>,
    snapshots: readonly TaskSnapshot__Output[],
    nowMs: number,
  ): AcceptedAcks {
    return acceptAcks(this.callScope(), call, snapshots, nowMs);
  }

  private callScope(): CallScope {
    return {
      jobId: this.jobId,
      epoch: this.epochValue,
      rules: this.ackRules,
      retained: this.committed.retained,
      checkpoints: this.checkpoints,
      ownerOf: (taskId) => this.roster.ownerOf(taskId),
    };
  }

  /** Approximate bytes of acknowledgements the pending checkpoints hold. */
  pendingAckBytes(): number {
    return this.checkpoints.pendingAckBytes();
  }

  // --- outcomes -----------------------------------------------------------

  /** Pending checkpoints past their deadline that are not committing. */
  expired(nowMs: number): Checkpoint[] {
    return this.checkpoints.expired(nowMs);
  }

  /** The earliest deadline of the pending checkpoints. */
  nextDeadlineMs(): number | undefined {
    return this.checkpoints.nextDeadlineMs();
  }

  /**
   * Aborts a pending checkpoint. Returns true when this failure exceeds the
   * policy's tolerable consecutive failures: the job's attempt has failed.
   */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string, nowMs: number): boolean {
    checkpoint.abort(reason, message, nowMs);
    this.finish(checkpoint, nowMs);
    return this.failures.aborted(reason);
  }

  /**
   * The later checkpoint that completed while the fully acknowledged
   * `checkpoint` waited its turn to commit (commits run in the order the
   * acknowledgements completed): then `checkpoint` is subsumed. Undefined: it commits.
   */
  completedBefore(checkpoint: Checkpoint): number | undefined {
    return this.committed.completedBefore(checkpoint.id);
  }

  /** Committed ids that retention deletes when `checkpointId` commits. */
  subsumedBy(checkpointId: number): number[] {
    return this.committed.subsumedBy(checkpointId);
  }

  /**
   * Records a committed checkpoint; returns the older pending ones, which it
   * subsumes and which the caller aborts with reason SUBSUMED.
   */
  complete(checkpoint: Checkpoint, nowMs: number, manifestBytes: number, manifestParts: number): Checkpoint[] {
    const subsumed = this.committed.subsumedBy(checkpoint.id);
    checkpoint.complete(nowMs, manifestBytes, manifestParts);
    this.finish(checkpoint, nowMs);
    this.schedule.completed(nowMs - checkpoint.init.triggeredAtMs);
    this.committed.committed(checkpoint.id, checkpoint.init.epoch, subsumed);
    this.failures.completed();
    return this.checkpoints.olderThan(checkpoint.id);
  }

  private finish(checkpoint: Checkpoint, nowMs: number): void {
    this.checkpoints.finish(checkpoint);
    this.schedule.finished(nowMs);
  }

  // --- job state ----------------------------------------------------------

  /** Marks the job canceled; the caller aborts what is pending. */
  cancel(): void {
    this.stateValue = 'JOB_STATE_CANCELED';
  }

  /**
   * The retained checkpoint a restore to `checkpointId` (0: the latest)
   * goes to. Throws JOB_CANCELED, or UNKNOWN_CHECKPOINT naming the
   * retained ids; changes nothing.
   */
  checkRestore(checkpointId: number): number {
    this.requireRunning();
    return restoreTarget(this.jobId, checkpointId, this.latestCheckpointId, this.committed.retained);
  }

  /**
   * Moves to a new epoch after a recovery; pending ones must be aborted
   * first. With `restoreTo`, an operator's restore: that checkpoint is the
   * restore point from this epoch on.
   */
  enterEpoch(epoch: number, restoreTo?: number): void {
    if (this.checkpoints.pendingCount > 0) throw new Error(`job ${this.jobId}: new epoch with checkpoints pending`);
    if (epoch <= this.epochValue) throw new Error(`job ${this.jobId}: epoch ${epoch} is not above ${this.epochValue}`);
    if (restoreTo !== undefined) this.restorePointValue = { checkpointId: restoreTo, epoch };
    this.epochValue = epoch;
    this.failures.reset();
    this.roster.restoring();
  }

  private requireRunning(): void {
    if (this.stateValue === 'JOB_STATE_CANCELED') {
      throw new CkptError('JOB_CANCELED', `job ${this.jobId} is canceled`, { jobId: this.jobId });
    }
  }
}
