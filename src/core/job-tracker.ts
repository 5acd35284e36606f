/**
 * The checkpoint protocol of one job, as a pure state machine: which tasks
 * are attached, which checkpoints are pending, when the next one is due,
 * which acknowledgements to accept, and what retention subsumes. It does no
 * I/O and reads no clock; the coordinator feeds it times and carries out
 * what it decides against etcd and NATS.
 */
import type { JobCheckpointing__Output } from '../gen/ckpt/v1/JobCheckpointing.js';
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState__Output } from '../gen/ckpt/v1/JobState.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { Checkpoint, type AbortCause, type CheckpointInit } from './checkpoint.js';
import { CkptError } from './errors.js';
import { IdAllocator } from './id-allocator.js';
import { resolvePolicy, type ResolvedPolicy } from './policy.js';
import {
  recoveryCheckpointId,
  restorePointInForce,
  restoreTarget,
  type LatestCheckpoint,
  type RestorePoint,
} from './restore-point.js';
import { DEFAULT_LIMITS } from './limits.js';
import { DEFAULT_STATE_URI_SCHEMES, validateTaskSnapshot, type SnapshotRules } from './snapshot-checks.js';

/** @default 100 finished checkpoints remembered per job for listings. */
export const DEFAULT_HISTORY_SIZE = 100;

/**
 * Where the job's current attempt is. `restoring`: tasks restore the
 * recovery's checkpoint (see `recoveryCheckpointId`) in the current epoch
 * and report ready; nothing runs yet. `running`: every task reported ready
 * and was told to start. `resuming`: a coordinator started and does not
 * know yet whether the tasks kept running in the stored epoch while it was
 * away.
 */
export type JobAttempt = 'resuming' | 'restoring' | 'running';

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

/** The rules acknowledgements of a job are held to. */
export interface AckRules extends SnapshotRules {
  /** Bytes of acknowledgements the job's pending checkpoints may hold, approximately. */
  maxPendingAckBytes: number;
}

/** @default rules: those of `DEFAULT_LIMITS` and the SDK's state backends. */
export const DEFAULT_ACK_RULES: Readonly<AckRules> = Object.freeze({
  maxStateBytes: DEFAULT_LIMITS.maxStateBytes,
  maxPendingAckBytes: DEFAULT_LIMITS.maxPendingAckBytesPerJob,
  stateUriSchemes: new Set(DEFAULT_STATE_URI_SCHEMES),
});

/** One acknowledge or decline call, as received. */
export interface CheckpointCall {
  epoch: number;
  checkpointId: number;
  workerId: string;
  taskIds: readonly string[];
}

/** Aborts that count towards the tolerable-failures limit (as in Flink). */
const FAILURE_CAUSES: ReadonlySet<AbortCause> = new Set<AbortCause>([
  'ABORT_REASON_TIMEOUT',
  'ABORT_REASON_DECLINED',
  'ABORT_REASON_TASK_FAILURE',
  'ABORT_REASON_COMMIT_FAILED',
]);

/** The per-job checkpoint state machine. */
export class JobTracker {
  readonly spec: JobSpec__Output;
  readonly policy: ResolvedPolicy;
  readonly createdAtMs: number;
  readonly ids: IdAllocator;
  private stateValue: JobState__Output;
  private epochValue: number;
  private latest: number;
  private latestEpoch: number;
  private restorePointValue: RestorePoint | undefined;
  private retained: number[];
  private readonly pending = new Map<number, Checkpoint>();
  private readonly history: Checkpoint[] = [];
  private readonly historySize: number;
  private readonly attached = new Map<string, string>();
  private readonly ready = new Set<string>();
  private attemptValue: JobAttempt;
  private readonly sources: readonly string[];
  private readonly taskIds: readonly string[];
  private readonly knownTasks: ReadonlySet<string>;
  private readonly ackRules: AckRules;
  private consecutiveFailures = 0;
  private lastTriggeredAtMs = -Infinity;
  private lastFinishedAtMs = -Infinity;
  private lastOutcome: 'none' | 'completed' | 'failed' = 'none';
  private triggersSinceFull = 0;

  constructor(init: JobTrackerInit) {
    this.spec = init.spec;
    this.policy = resolvePolicy(init.spec.policy);
    this.createdAtMs = init.createdAtMs;
    this.stateValue = init.state;
    this.epochValue = init.epoch;
    this.latest = init.latestCheckpointId;
    this.latestEpoch = init.latestCheckpointEpoch ?? 0;
    this.restorePointValue = init.restorePoint;
    this.retained = [...init.retainedCheckpointIds].sort((a, b) => a - b);
    this.ids = new IdAllocator(Math.max(init.idFloor, init.latestCheckpointId + 1));
    this.historySize = init.historySize ?? DEFAULT_HISTORY_SIZE;
    this.taskIds = init.spec.tasks.map((t) => t.taskId);
    this.knownTasks = new Set(this.taskIds);
    this.ackRules = init.ackRules ?? DEFAULT_ACK_RULES;
    this.sources = init.spec.tasks.filter((t) => t.inputs.length === 0).map((t) => t.taskId);
    if (this.latest > 0) this.lastOutcome = 'completed';
    this.attemptValue = init.attempt;
  }

  get attempt(): JobAttempt {
    return this.attemptValue;
  }
  get readyTasks(): number {
    return this.ready.size;
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
    return this.latest;
  }
  get retainedCheckpointIds(): readonly number[] {
    return this.retained;
  }
  /** The restore point while recoveries restore from it, else undefined. */
  get restorePoint(): RestorePoint | undefined {
    const point = this.restorePointValue;
    return restorePointInForce(this.latestCheckpoint(), point) ? point : undefined;
  }
  /** The checkpoint a recovery restores from now: the restore point in force, else the latest. */
  get recoveryCheckpointId(): number {
    return recoveryCheckpointId(this.latestCheckpoint(), this.restorePointValue);
  }
  get attachedTasks(): number {
    return this.attached.size;
  }
  get sourceTaskIds(): readonly string[] {
    return this.sources;
  }

  /** The per-job view: Idle, Checkpointing or Checkpointed. */
  get checkpointing(): JobCheckpointing__Output {
    if (this.pending.size > 0) return 'JOB_CHECKPOINTING_CHECKPOINTING';
    return this.lastOutcome === 'completed' ? 'JOB_CHECKPOINTING_CHECKPOINTED' : 'JOB_CHECKPOINTING_IDLE';
  }

  /** Pending checkpoints, oldest first. */
  pendingCheckpoints(): Checkpoint[] {
    return [...this.pending.values()].sort((a, b) => a.id - b.id);
  }

  /** A pending or remembered checkpoint. */
  find(checkpointId: number): Checkpoint | undefined {
    return this.pending.get(checkpointId) ?? this.history.find((c) => c.id === checkpointId);
  }

  /** Pending and remembered checkpoints, newest first. */
  known(): Checkpoint[] {
    return [...this.pending.values(), ...this.history].sort((a, b) => b.id - a.id);
  }

  // --- sessions -----------------------------------------------------------

  /** Attaches tasks to a worker; all or none. */
  attach(workerId: string, taskIds: readonly string[]): void {
    const taken = this.takenTask(workerId, taskIds);
    if (taken !== undefined) {
      throw new CkptError('TASK_ALREADY_ATTACHED', `task ${taken.taskId} is attached by another worker session`, {
        jobId: this.jobId,
        taskId: taken.taskId,
      });
    }
    for (const taskId of taskIds) this.attached.set(taskId, workerId);
  }

  /**
   * The first of `taskIds` attached by another worker than `workerId`, or
   * undefined when the worker may attach them all now. Throws what
   * `attach` throws for anything else (a canceled job, unknown or repeated
   * tasks); changes nothing.
   */
  takenTask(workerId: string, taskIds: readonly string[]): { taskId: string; owner: string } | undefined {
    this.requireRunning();
    const known = this.knownTasks;
    const seen = new Set<string>();
    let taken: { taskId: string; owner: string } | undefined;
    for (const taskId of taskIds) {
      const ids = { jobId: this.jobId, taskId };
      if (!known.has(taskId)) throw new CkptError('UNKNOWN_TASK', `job ${this.jobId} has no task ${taskId}`, ids);
      if (seen.has(taskId)) throw new CkptError('MALFORMED', `task ${taskId} named twice in hello`, ids);
      seen.add(taskId);
      const owner = this.attached.get(taskId);
      if (owner !== undefined && owner !== workerId) taken ??= { taskId, owner };
    }
    return taken;
  }

  /** Detaches every task of a worker; returns the task ids it had. */
  detach(workerId: string): string[] {
    const gone: string[] = [];
    for (const [taskId, owner] of this.attached) {
      if (owner === workerId) gone.push(taskId);
    }
    for (const taskId of gone) {
      this.attached.delete(taskId);
      this.ready.delete(taskId);
    }
    return gone;
  }

  allTasksAttached(): boolean {
    return this.attached.size === this.taskIds.length;
  }

  /** Task ids a worker has attached. */
  tasksOf(workerId: string): string[] {
    return [...this.attached].filter(([, owner]) => owner === workerId).map(([taskId]) => taskId);
  }

  /**
   * Records that a worker's tasks are ready in `epoch` (restored, or found
   * still running while resuming). Reports of another epoch or of tasks the
   * worker has not attached are ignored. Returns true when this makes every
   * task ready: the attempt is then `running` and the caller tells the
   * workers to start.
   */
  markReady(workerId: string, epoch: number, taskIds: readonly string[]): boolean {
    if (epoch !== this.epochValue || this.attemptValue === 'running') return false;
    for (const taskId of taskIds) {
      if (this.attached.get(taskId) === workerId) this.ready.add(taskId);
    }
    if (this.ready.size < this.taskIds.length) return false;
    this.attemptValue = 'running';
    return true;
  }

  // --- triggering ---------------------------------------------------------

  /**
   * Why a checkpoint cannot start now, or undefined when it can: the one
   * rule for manual and periodic triggers alike. The job runs, every task
   * is attached and has restored the current epoch, and fewer checkpoints
   * than the policy allows are pending.
   */
  triggerRefusal(): CkptError | undefined {
    const ids = { jobId: this.jobId };
    const tasks = this.taskIds.length;
    if (this.stateValue === 'JOB_STATE_CANCELED')
      return new CkptError('JOB_CANCELED', `job ${this.jobId} is canceled`, ids);
    if (!this.allTasksAttached()) {
      return new CkptError('TASKS_NOT_READY', `${tasks - this.attached.size} of ${tasks} tasks are not attached`, ids);
    }
    if (this.attemptValue !== 'running') {
      const message = `${tasks - this.ready.size} of ${tasks} tasks have not restored epoch ${this.epochValue} yet`;
      return new CkptError('TASKS_NOT_READY', message, ids);
    }
    if (this.pending.size >= this.policy.maxConcurrent) {
      const message = `${this.pending.size} checkpoints pending, policy allows ${this.policy.maxConcurrent}`;
      return new CkptError('TOO_MANY_PENDING', message, ids);
    }
    return undefined;
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
    if (this.policy.intervalMs === 0 || this.stateValue !== 'JOB_STATE_RUNNING' || this.triggerRefusal() !== undefined)
      return undefined;
    return Math.max(this.lastTriggeredAtMs + this.policy.intervalMs, this.lastFinishedAtMs + this.policy.minPauseMs, 0);
  }

  /** Starts a checkpoint with the next id; the id must be reserved. */
  trigger(nowMs: number, manual: boolean, snapshotType?: CheckpointInit['snapshotType']): Checkpoint {
    this.checkCanTrigger();
    const id = this.ids.take();
    const full = this.policy.fullEvery === 0 || this.triggersSinceFull % this.policy.fullEvery === 0;
    const type = snapshotType ?? (full ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_INCREMENTAL');
    this.triggersSinceFull = type === 'SNAPSHOT_TYPE_FULL' ? 1 : this.triggersSinceFull + 1;
    const checkpoint = new Checkpoint({
      jobId: this.jobId,
      checkpointId: id,
      epoch: this.epochValue,
      snapshotType: type,
      manual,
      triggeredAtMs: nowMs,
      deadlineMs: nowMs + this.policy.timeoutMs,
      taskIds: this.taskIds,
    });
    this.pending.set(id, checkpoint);
    this.lastTriggeredAtMs = nowMs;
    return checkpoint;
  }

  // --- acknowledgements ---------------------------------------------------

  /**
   * Validates an acknowledge or decline call against the job's state and
   * returns the pending checkpoint it concerns. Changes nothing.
   */
  checkCall(call: CheckpointCall): Checkpoint {
    const ids = { jobId: this.jobId, checkpointId: call.checkpointId, epoch: call.epoch };
    if (call.epoch !== this.epochValue) {
      throw new CkptError('STALE_EPOCH', `epoch ${call.epoch} is not the job's epoch ${this.epochValue}`, ids);
    }
    if (call.taskIds.length === 0) throw new CkptError('MALFORMED', 'the call names no task', ids);
    const checkpoint = this.find(call.checkpointId);
    if (checkpoint === undefined) {
      if (this.retained.includes(call.checkpointId)) {
        throw new CkptError('CHECKPOINT_COMPLETED', `checkpoint ${call.checkpointId} already completed`, ids);
      }
      throw new CkptError(
        'UNKNOWN_CHECKPOINT',
        `no checkpoint ${call.checkpointId} is known for job ${this.jobId}`,
        ids,
      );
    }
    for (const taskId of call.taskIds) {
      if (!checkpoint.hasTask(taskId)) {
        throw new CkptError('UNKNOWN_TASK', `job ${this.jobId} has no task ${taskId}`, { ...ids, taskId });
      }
      if (this.attached.get(taskId) !== call.workerId) {
        throw new CkptError('TASK_NOT_ATTACHED', `task ${taskId} is not attached by the calling worker session`, {
          ...ids,
          taskId,
        });
      }
    }
    return checkpoint;
  }

  /** Validates and records acknowledgements; all or none. */
  acknowledge(
    call: Omit<CheckpointCall, 'taskIds'>,
    snapshots: readonly TaskSnapshot__Output[],
  ): {
    checkpoint: Checkpoint;
    duplicates: number;
  } {
    const sizes = snapshots.map((s) =>
      validateTaskSnapshot(s, { jobId: this.jobId, checkpointId: call.checkpointId }, this.ackRules),
    );
    const checkpoint = this.checkCall({ ...call, taskIds: snapshots.map((s) => s.taskId) });
    checkpoint.checkAcknowledge(snapshots);
    const adding = checkpoint.newBytes(snapshots, sizes);
    const held = this.pendingAckBytes();
    if (adding > 0 && held + adding > this.ackRules.maxPendingAckBytes) {
      throw new CkptError(
        'LIMIT_REACHED',
        `the job's pending checkpoints hold ${held} bytes of acknowledgements; ${adding} more would pass the limit of ${this.ackRules.maxPendingAckBytes}`,
        { jobId: this.jobId, checkpointId: call.checkpointId },
      );
    }
    const { duplicates } = checkpoint.acknowledge(snapshots, sizes);
    return { checkpoint, duplicates };
  }

  /** Approximate bytes of acknowledgements the pending checkpoints hold. */
  pendingAckBytes(): number {
    let bytes = 0;
    for (const c of this.pending.values()) bytes += c.ackBytes;
    return bytes;
  }

  // --- outcomes -----------------------------------------------------------

  /** Pending checkpoints past their deadline that are not committing. */
  expired(nowMs: number): Checkpoint[] {
    return this.pendingCheckpoints().filter((c) => !c.committing && c.init.deadlineMs <= nowMs);
  }

  /** The earliest deadline of the pending checkpoints. */
  nextDeadlineMs(): number | undefined {
    const deadlines = this.pendingCheckpoints().map((c) => c.init.deadlineMs);
    return deadlines.length === 0 ? undefined : Math.min(...deadlines);
  }

  /**
   * Aborts a pending checkpoint. Returns true when this failure exceeds the
   * policy's tolerable consecutive failures: the job's attempt has failed.
   */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string, nowMs: number): boolean {
    checkpoint.abort(reason, message, nowMs);
    this.finish(checkpoint, nowMs);
    if (!FAILURE_CAUSES.has(reason)) return false;
    this.lastOutcome = 'failed';
    this.consecutiveFailures += 1;
    const tolerable = this.policy.tolerableFailures;
    return tolerable >= 0 && this.consecutiveFailures > tolerable;
  }

  /**
   * The later checkpoint that completed while the fully acknowledged
   * `checkpoint` waited its turn to commit (with several pending, commits
   * run in the order the acknowledgements completed): then `checkpoint` is
   * subsumed, not committed and not failed. Undefined: it commits.
   */
  completedBefore(checkpoint: Checkpoint): number | undefined {
    return checkpoint.id < this.latest ? this.latest : undefined;
  }

  /** Committed ids that retention deletes when `checkpointId` commits. */
  subsumedBy(checkpointId: number): number[] {
    const after = [...this.retained, checkpointId];
    return after.slice(0, Math.max(0, after.length - this.policy.retained));
  }

  /**
   * Records a committed checkpoint; returns the older pending ones, which it
   * subsumes and which the caller aborts with reason SUBSUMED.
   */
  complete(checkpoint: Checkpoint, nowMs: number, manifestBytes: number, manifestParts: number): Checkpoint[] {
    const subsumed = this.subsumedBy(checkpoint.id);
    checkpoint.complete(nowMs, manifestBytes, manifestParts);
    this.finish(checkpoint, nowMs);
    this.latest = checkpoint.id;
    this.latestEpoch = checkpoint.init.epoch;
    this.retained = [...this.retained, checkpoint.id].filter((id) => !subsumed.includes(id));
    this.consecutiveFailures = 0;
    this.lastOutcome = 'completed';
    return this.pendingCheckpoints().filter((c) => c.id < checkpoint.id && !c.committing);
  }

  private finish(checkpoint: Checkpoint, nowMs: number): void {
    this.pending.delete(checkpoint.id);
    this.history.unshift(checkpoint);
    if (this.history.length > this.historySize) this.history.length = this.historySize;
    this.lastFinishedAtMs = nowMs;
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
    return restoreTarget(this.jobId, checkpointId, this.latest, this.retained);
  }

  /**
   * Moves to a new epoch after a recovery; pending ones must be aborted
   * first. With `restoreTo`, an operator's restore: that checkpoint is the
   * restore point from this epoch on.
   */
  enterEpoch(epoch: number, restoreTo?: number): void {
    if (this.pending.size > 0) throw new Error(`job ${this.jobId}: new epoch with checkpoints pending`);
    if (epoch <= this.epochValue) throw new Error(`job ${this.jobId}: epoch ${epoch} is not above ${this.epochValue}`);
    if (restoreTo !== undefined) this.restorePointValue = { checkpointId: restoreTo, epoch };
    this.epochValue = epoch;
    this.consecutiveFailures = 0;
    this.attemptValue = 'restoring';
    this.ready.clear();
  }

  private latestCheckpoint(): LatestCheckpoint {
    return { checkpointId: this.latest, epoch: this.latestEpoch };
  }

  private requireRunning(): void {
    if (this.stateValue === 'JOB_STATE_CANCELED') {
      throw new CkptError('JOB_CANCELED', `job ${this.jobId} is canceled`, { jobId: this.jobId });
    }
  }
}
