/**
 * What a finished checkpoint changes for its job: a commit moves the latest
 * checkpoint and lets retention subsume older ones; a checkpoint that
 * completed while another waited to commit subsumes that one; a failure
 * counts towards the policy's tolerable failures. Pure decisions, no I/O.
 */
import type { AbortCause } from './checkpoint.js';
import type { LatestCheckpoint } from './restore-point.js';

/** Aborts that count towards the tolerable-failures limit (as in Flink). */
const FAILURE_CAUSES: ReadonlySet<AbortCause> = new Set<AbortCause>([
  'ABORT_REASON_TIMEOUT',
  'ABORT_REASON_DECLINED',
  'ABORT_REASON_TASK_FAILURE',
  'ABORT_REASON_COMMIT_FAILED',
]);

/** The latest committed checkpoint of a job and the committed ones retention keeps, oldest first. */
export class CommittedCheckpoints {
  private latestValue: LatestCheckpoint;
  private retainedIds: number[];
  private readonly keep: number;

  /** `keep`: how many committed checkpoints retention keeps (the policy's `retained`). */
  constructor(latest: LatestCheckpoint, retained: readonly number[], keep: number) {
    this.latestValue = latest;
    this.retainedIds = [...retained].sort((a, b) => a - b);
    this.keep = keep;
  }

  get latest(): LatestCheckpoint {
    return this.latestValue;
  }
  get retained(): readonly number[] {
    return this.retainedIds;
  }

  /**
   * The later checkpoint that completed while the fully acknowledged
   * checkpoint `checkpointId` waited its turn to commit: then that one is
   * subsumed, not committed and not failed. Undefined: it commits.
   */
  completedBefore(checkpointId: number): number | undefined {
    const latest = this.latestValue.checkpointId;
    return checkpointId < latest ? latest : undefined;
  }

  /** Committed ids that retention deletes when `checkpointId` commits. */
  subsumedBy(checkpointId: number): number[] {
    const after = [...this.retainedIds, checkpointId];
    return after.slice(0, Math.max(0, after.length - this.keep));
  }

  /** Records a commit in `epoch` that deleted `subsumed` (from `subsumedBy`). */
  committed(checkpointId: number, epoch: number, subsumed: readonly number[]): void {
    this.latestValue = { checkpointId, epoch };
    this.retainedIds = [...this.retainedIds, checkpointId].filter((id) => !subsumed.includes(id));
  }
}

/** Consecutive checkpoint failures of a job, and whether its last checkpoint completed or failed. */
export class FailureStreak {
  private readonly tolerable: number;
  private failures = 0;
  private last: 'none' | 'completed' | 'failed';

  /** `tolerable`: the policy's tolerable consecutive failures, negative for any number. */
  constructor(tolerable: number, hasCommitted: boolean) {
    this.tolerable = tolerable;
    this.last = hasCommitted ? 'completed' : 'none';
  }

  /** How the last checkpoint that counts ended: a commit, a failure, or none yet. */
  get lastOutcome(): 'none' | 'completed' | 'failed' {
    return this.last;
  }

  /**
   * Counts an abort with `reason`. Returns true when this failure exceeds
   * the tolerable failures: the job's attempt has failed. Aborts that are
   * no failure (subsumed, canceled, restored, ...) change nothing.
   */
  aborted(reason: AbortCause): boolean {
    if (!FAILURE_CAUSES.has(reason)) return false;
    this.last = 'failed';
    this.failures += 1;
    return this.tolerable >= 0 && this.failures > this.tolerable;
  }

  /** A checkpoint completed: the streak ends. */
  completed(): void {
    this.failures = 0;
    this.last = 'completed';
  }

  /** A new attempt starts with no failures counted. */
  reset(): void {
    this.failures = 0;
  }
}
