/**
 * One checkpoint's life: PENDING, then COMPLETED or ABORTED. This is the
 * only place that changes a checkpoint's state; an illegal transition
 * throws, so a bug cannot quietly complete an aborted checkpoint.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AbortReason__Output } from '../gen/ckpt/v1/AbortReason.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { SnapshotType__Output } from '../gen/ckpt/v1/SnapshotType.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CkptError } from './errors.js';

/** The states of one checkpoint. */
export type CheckpointStatus = 'PENDING' | 'COMPLETED' | 'ABORTED';

/** Why a checkpoint ended without completing. */
export type AbortCause = Exclude<AbortReason__Output, 'ABORT_REASON_UNSPECIFIED'>;

/** What a checkpoint is started with. */
export interface CheckpointInit {
  jobId: string;
  checkpointId: number;
  epoch: number;
  snapshotType: Exclude<SnapshotType__Output, 'SNAPSHOT_TYPE_UNSPECIFIED'>;
  manual: boolean;
  triggeredAtMs: number;
  deadlineMs: number;
  /** Every task that must acknowledge, sorted. */
  taskIds: readonly string[];
  /** The same tasks as a set, when the caller holds one (a job's checkpoints share it). @default a new set */
  taskSet?: ReadonlySet<string>;
}

/** The outcome of recording one call's acknowledgements. */
export interface AckOutcome {
  recorded: number;
  duplicates: number;
}

/** The figures a summary reports, summed over the acknowledgements. */
interface AckFigures {
  acknowledged: number;
  stateSizeBytes: number;
  persistedBytes: number;
  maxAlignmentMs: number;
  maxSnapshotMs: number;
  /** Some task stored only what changed, building on earlier pieces. */
  incremental: boolean;
}

/**
 * What a task stored for a checkpoint: what it says, or, from a worker
 * that does not say, INCREMENTAL when its handle shares pieces.
 */
export function storedSnapshotType(snapshot: TaskSnapshot__Output): CheckpointInit['snapshotType'] {
  if (snapshot.snapshotType === 'SNAPSHOT_TYPE_FULL' || snapshot.snapshotType === 'SNAPSHOT_TYPE_INCREMENTAL') {
    return snapshot.snapshotType;
  }
  return (snapshot.state?.shared.length ?? 0) > 0 ? 'SNAPSHOT_TYPE_INCREMENTAL' : 'SNAPSHOT_TYPE_FULL';
}

/**
 * A checkpoint being taken or already finished. A finished one keeps only
 * the figures of its acknowledgements, not the acknowledgements: the
 * history of a job of thousands of tasks would otherwise hold thousands of
 * snapshots per checkpoint.
 */
export class Checkpoint {
  readonly init: CheckpointInit;
  private readonly tasks: ReadonlySet<string>;
  private readonly acks = new Map<string, TaskSnapshot__Output>();
  /** When each acknowledgement arrived. */
  private readonly ackTimes = new Map<string, number>();
  private latestAckAtMs = 0;
  /** Per-task figures, kept from the acknowledgements when the checkpoint finishes. */
  private finalTasks: TaskCheckpointStatistics__Output[] | undefined;
  /** Per-task figures made while committing, when the acknowledgements no longer change. */
  private committingTasks: TaskCheckpointStatistics__Output[] | undefined;
  private ackBytesValue = 0;
  private statusValue: CheckpointStatus = 'PENDING';
  private committingValue = false;
  private abortReason: AbortCause | undefined;
  private abortMessage = '';
  private finishedAtMs = 0;
  private manifestBytes = 0;
  private manifestParts = 0;
  /** Set when the checkpoint finishes, as its acknowledgements are dropped. */
  private finalFigures: AckFigures | undefined;

  constructor(init: CheckpointInit) {
    this.init = init;
    this.tasks = init.taskSet ?? new Set(init.taskIds);
  }

  get id(): number {
    return this.init.checkpointId;
  }

  get status(): CheckpointStatus {
    return this.statusValue;
  }

  /** True between `beginCommit` and `complete` or `abort`. */
  get committing(): boolean {
    return this.committingValue;
  }

  get acknowledgedTasks(): number {
    return this.finalFigures?.acknowledged ?? this.acks.size;
  }

  get fullyAcknowledged(): boolean {
    return this.acknowledgedTasks === this.tasks.size;
  }

  /** Approximate bytes of the acknowledgements held (0 once finished). */
  get ackBytes(): number {
    return this.ackBytesValue;
  }

  hasTask(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  /**
   * Checks a call's snapshots without recording anything: every task must
   * belong to the checkpoint, appear once, and not contradict an earlier
   * acknowledgement. Throws the first refusal.
   */
  checkAcknowledge(snapshots: readonly TaskSnapshot__Output[]): void {
    this.requirePending('acknowledge');
    const seen = new Set<string>();
    for (const s of snapshots) {
      const ids = { jobId: this.init.jobId, checkpointId: this.id, taskId: s.taskId };
      if (!this.tasks.has(s.taskId))
        throw new CkptError('UNKNOWN_TASK', `task ${s.taskId} is not part of the job`, ids);
      if (seen.has(s.taskId)) throw new CkptError('MALFORMED', `task ${s.taskId} appears twice in one call`, ids);
      seen.add(s.taskId);
      const earlier = this.acks.get(s.taskId);
      if (earlier !== undefined && !isDeepStrictEqual(earlier, s)) {
        throw new CkptError(
          'CONFLICTING_ACK',
          `task ${s.taskId} already acknowledged checkpoint ${this.id} differently`,
          ids,
        );
      }
    }
  }

  /** Of `sizes` (one per snapshot), the bytes of the snapshots not recorded yet. */
  newBytes(snapshots: readonly TaskSnapshot__Output[], sizes: readonly number[]): number {
    if (this.committingValue) return 0;
    let bytes = 0;
    snapshots.forEach((s, i) => {
      if (!this.acks.has(s.taskId)) bytes += sizes[i] ?? 0;
    });
    return bytes;
  }

  /**
   * Records snapshots that passed `checkAcknowledge`, received at `nowMs`,
   * with their approximate sizes (one per snapshot, default 0); repeats are
   * no-ops.
   */
  acknowledge(snapshots: readonly TaskSnapshot__Output[], nowMs: number, sizes: readonly number[] = []): AckOutcome {
    this.checkAcknowledge(snapshots);
    return this.recordChecked(snapshots, nowMs, sizes);
  }

  /**
   * `acknowledge` of snapshots that `checkAcknowledge` passed just now, in
   * the same turn (`acceptAcks`): the check is not run twice over a call
   * of thousands of snapshots.
   */
  recordChecked(snapshots: readonly TaskSnapshot__Output[], nowMs: number, sizes: readonly number[] = []): AckOutcome {
    if (this.committingValue) return { recorded: 0, duplicates: snapshots.length };
    let recorded = 0;
    snapshots.forEach((s, i) => {
      if (this.acks.has(s.taskId)) return;
      this.acks.set(s.taskId, s);
      this.ackTimes.set(s.taskId, nowMs);
      this.ackBytesValue += sizes[i] ?? 0;
      recorded += 1;
    });
    if (recorded > 0) this.latestAckAtMs = Math.max(this.latestAckAtMs, nowMs);
    return { recorded, duplicates: snapshots.length - recorded };
  }

  /** The snapshots acknowledged so far (none once finished): where the tasks uploaded state. */
  acknowledged(): TaskSnapshot__Output[] {
    return [...this.acks.values()];
  }

  /** Marks the start of the etcd commit; needs every acknowledgement. */
  beginCommit(): void {
    this.requirePending('commit');
    if (!this.fullyAcknowledged) throw new Error(`checkpoint ${this.id}: commit before every task acknowledged`);
    if (this.committingValue) throw new Error(`checkpoint ${this.id}: commit started twice`);
    this.committingValue = true;
  }

  /** PENDING → COMPLETED, after the commit transaction succeeded. */
  complete(nowMs: number, manifestBytes: number, manifestParts: number): void {
    this.requirePending('complete');
    if (!this.committingValue) throw new Error(`checkpoint ${this.id}: complete without a commit`);
    this.statusValue = 'COMPLETED';
    this.committingValue = false;
    this.finishedAtMs = nowMs;
    this.manifestBytes = manifestBytes;
    this.manifestParts = manifestParts;
    this.dropAcks();
  }

  /** PENDING → ABORTED with a reason. */
  abort(reason: AbortCause, message: string, nowMs: number): void {
    this.requirePending('abort');
    this.statusValue = 'ABORTED';
    this.committingValue = false;
    this.abortReason = reason;
    this.abortMessage = message;
    this.finishedAtMs = nowMs;
    this.dropAcks();
  }

  /** Keeps the figures of a finished checkpoint and lets its acknowledgements go. */
  private dropAcks(): void {
    this.finalFigures = this.ackFigures();
    this.finalTasks = this.committingTasks ?? this.tasksNow();
    this.committingTasks = undefined;
    this.acks.clear();
    this.ackTimes.clear();
    this.ackBytesValue = 0;
  }

  /**
   * Every task's figures, ordered by task id: what it acknowledged, and
   * when; a task that did not acknowledge has no metrics. A finished
   * checkpoint keeps these (small) figures, not the snapshots, until the
   * statistics take them (`takeTaskFigures`).
   */
  taskFigures(): TaskCheckpointStatistics__Output[] {
    if (this.finalTasks !== undefined) return this.finalTasks;
    // A commit asks for them for the statistics it stores, and its completion again: made once.
    if (this.committingValue) return (this.committingTasks ??= this.tasksNow());
    return this.tasksNow();
  }

  /** The per-task figures of a finished checkpoint, which it then lets go. */
  takeTaskFigures(): TaskCheckpointStatistics__Output[] {
    const tasks = this.taskFigures();
    if (this.statusValue !== 'PENDING') this.finalTasks = [];
    return tasks;
  }

  private tasksNow(): TaskCheckpointStatistics__Output[] {
    return this.init.taskIds.map((taskId) => {
      const s = this.acks.get(taskId);
      return {
        taskId,
        acknowledgedAtMs: this.ackTimes.get(taskId) ?? 0,
        metrics: s?.metrics ?? null,
        snapshotType: s === undefined ? 'SNAPSHOT_TYPE_UNSPECIFIED' : storedSnapshotType(s),
      };
    });
  }

  private ackFigures(): AckFigures {
    if (this.finalFigures !== undefined) return this.finalFigures;
    const figures = {
      acknowledged: this.acks.size,
      stateSizeBytes: 0,
      persistedBytes: 0,
      maxAlignmentMs: 0,
      maxSnapshotMs: 0,
      incremental: false,
    };
    for (const s of this.acks.values()) {
      const m = s.metrics;
      figures.stateSizeBytes += m?.stateSizeBytes ?? s.state?.sizeBytes ?? 0;
      figures.persistedBytes += m?.persistedBytes ?? 0;
      figures.maxAlignmentMs = Math.max(figures.maxAlignmentMs, m?.alignmentMs ?? 0);
      figures.maxSnapshotMs = Math.max(figures.maxSnapshotMs, (m?.syncMs ?? 0) + (m?.asyncMs ?? 0));
      figures.incremental ||= storedSnapshotType(s) === 'SNAPSHOT_TYPE_INCREMENTAL';
    }
    return figures;
  }

  private requirePending(action: string): void {
    const ids = { jobId: this.init.jobId, checkpointId: this.id };
    if (this.statusValue === 'COMPLETED') {
      throw new CkptError('CHECKPOINT_COMPLETED', `cannot ${action} checkpoint ${this.id}: it already completed`, ids);
    }
    if (this.statusValue === 'ABORTED') {
      throw new CkptError(
        'CHECKPOINT_ABORTED',
        `cannot ${action} checkpoint ${this.id}: it was aborted (${this.abortReason ?? ''})`,
        ids,
      );
    }
  }

  /**
   * The manifest to commit: every task's snapshot, ordered by task id, each
   * with the type it stored, and the checkpoint's type from theirs.
   */
  manifest(completedAtMs: number): Manifest__Output {
    this.requirePending('build the manifest of');
    if (!this.fullyAcknowledged) throw new Error(`checkpoint ${this.id}: manifest before every task acknowledged`);
    // The acknowledged objects themselves where their type is already the stored one: the store may have
    // encoded them as they arrived (`CheckpointStore.prepareSnapshots`).
    const tasks = this.init.taskIds.map((t) => {
      const snapshot = this.acks.get(t) as TaskSnapshot__Output;
      const snapshotType = storedSnapshotType(snapshot);
      return snapshot.snapshotType === snapshotType ? snapshot : { ...snapshot, snapshotType };
    });
    return {
      jobId: this.init.jobId,
      checkpointId: this.id,
      epoch: this.init.epoch,
      snapshotType: this.storedType(
        tasks.some((s) => s.snapshotType === 'SNAPSHOT_TYPE_INCREMENTAL'),
        true,
      ),
      triggeredAtMs: this.init.triggeredAtMs,
      completedAtMs,
      tasks,
      fromSavepoint: null,
    };
  }

  /**
   * The trigger's type while pending or aborted, and for a savepoint; what
   * the tasks stored once completed.
   */
  private storedType(
    incremental: boolean,
    completed = this.statusValue === 'COMPLETED',
  ): CheckpointInit['snapshotType'] {
    if (!completed || this.init.snapshotType === 'SNAPSHOT_TYPE_SAVEPOINT') return this.init.snapshotType;
    return incremental ? 'SNAPSHOT_TYPE_INCREMENTAL' : 'SNAPSHOT_TYPE_FULL';
  }

  /** Figures for listings and lifecycle events. */
  summary(): CheckpointSummary__Output {
    const figures = this.ackFigures();
    return {
      jobId: this.init.jobId,
      checkpointId: this.id,
      epoch: this.init.epoch,
      state: `CHECKPOINT_STATE_${this.statusValue}`,
      abortReason: this.abortReason ?? 'ABORT_REASON_UNSPECIFIED',
      abortMessage: this.abortMessage,
      snapshotType: this.storedType(figures.incremental),
      manual: this.init.manual,
      triggeredAtMs: this.init.triggeredAtMs,
      finishedAtMs: this.finishedAtMs,
      totalTasks: this.tasks.size,
      acknowledgedTasks: figures.acknowledged,
      stateSizeBytes: figures.stateSizeBytes,
      persistedBytes: figures.persistedBytes,
      maxAlignmentMs: figures.maxAlignmentMs,
      maxSnapshotMs: figures.maxSnapshotMs,
      manifestBytes: this.manifestBytes,
      manifestParts: this.manifestParts,
      latestAcknowledgedAtMs: this.latestAckAtMs,
    };
  }
}
