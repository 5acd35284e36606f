/**
 * The rules an acknowledge or decline call of a job is held to: the job's
 * epoch, a pending checkpoint, tasks attached by the calling worker, and a
 * bound on the bytes of acknowledgements the job's pending checkpoints
 * hold. Each check throws a `CkptError` naming the ids and changes nothing.
 */
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Checkpoint } from './checkpoint.js';
import { CkptError } from './errors.js';
import type { JobCheckpoints } from './job-checkpoints.js';
import { DEFAULT_LIMITS } from './limits.js';
import { DEFAULT_STATE_URI_SCHEMES, validateTaskSnapshot, type SnapshotRules } from './snapshot-checks.js';

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

/** The job a call is checked against, as its tracker holds it. */
export interface CallScope {
  jobId: string;
  epoch: number;
  rules: AckRules;
  /** Committed checkpoints retention keeps. */
  retained: readonly number[];
  checkpoints: Pick<JobCheckpoints, 'find' | 'pendingAckBytes'>;
  /** The worker that attached a task, if any. */
  ownerOf(taskId: string): string | undefined;
}

/** An accepted acknowledgement call: its checkpoint, and how many snapshots it had already. */
export interface AcceptedAcks {
  checkpoint: Checkpoint;
  duplicates: number;
}

/**
 * Checks a call against the job and returns the checkpoint it concerns:
 * the job's epoch (else STALE_EPOCH), at least one task, a known
 * checkpoint (CHECKPOINT_COMPLETED for a retained one, else
 * UNKNOWN_CHECKPOINT), and tasks of that checkpoint (UNKNOWN_TASK) that the
 * calling worker attached (TASK_NOT_ATTACHED).
 */
export function checkCall(scope: CallScope, call: CheckpointCall): Checkpoint {
  const { jobId } = scope;
  const ids = { jobId, checkpointId: call.checkpointId, epoch: call.epoch };
  if (call.epoch !== scope.epoch) {
    throw new CkptError('STALE_EPOCH', `epoch ${call.epoch} is not the job's epoch ${scope.epoch}`, ids);
  }
  if (call.taskIds.length === 0) throw new CkptError('MALFORMED', 'the call names no task', ids);
  const checkpoint = scope.checkpoints.find(call.checkpointId);
  if (checkpoint === undefined) {
    if (scope.retained.includes(call.checkpointId)) {
      throw new CkptError('CHECKPOINT_COMPLETED', `checkpoint ${call.checkpointId} already completed`, ids);
    }
    throw new CkptError('UNKNOWN_CHECKPOINT', `no checkpoint ${call.checkpointId} is known for job ${jobId}`, ids);
  }
  for (const taskId of call.taskIds) {
    if (!checkpoint.hasTask(taskId)) {
      throw new CkptError('UNKNOWN_TASK', `job ${jobId} has no task ${taskId}`, { ...ids, taskId });
    }
    if (scope.ownerOf(taskId) !== call.workerId) {
      throw new CkptError('TASK_NOT_ATTACHED', `task ${taskId} is not attached by the calling worker session`, {
        ...ids,
        taskId,
      });
    }
  }
  return checkpoint;
}

/**
 * Checks an acknowledgement call whole and records its snapshots on the
 * checkpoint it concerns; all or none. Each snapshot must pass the rules,
 * the call `checkCall`, the checkpoint its own checks (no conflicting
 * repeat), and the new bytes must fit the job's bound (else LIMIT_REACHED).
 */
export function acceptAcks(
  scope: CallScope,
  call: Omit<CheckpointCall, 'taskIds'>,
  snapshots: readonly TaskSnapshot__Output[],
  nowMs: number,
): AcceptedAcks {
  const ids = { jobId: scope.jobId, checkpointId: call.checkpointId };
  const sizes = snapshots.map((s) => validateTaskSnapshot(s, ids, scope.rules));
  const checkpoint = checkCall(scope, { ...call, taskIds: snapshots.map((s) => s.taskId) });
  checkpoint.checkAcknowledge(snapshots);
  const adding = checkpoint.newBytes(snapshots, sizes);
  const held = scope.checkpoints.pendingAckBytes();
  if (adding > 0 && held + adding > scope.rules.maxPendingAckBytes) {
    throw new CkptError(
      'LIMIT_REACHED',
      `the job's pending checkpoints hold ${held} bytes of acknowledgements; ${adding} more would pass the limit of ${scope.rules.maxPendingAckBytes}`,
      ids,
    );
  }
  const { duplicates } = checkpoint.recordChecked(snapshots, nowMs, sizes);
  return { checkpoint, duplicates };
}
