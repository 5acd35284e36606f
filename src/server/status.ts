/**
 * The one place where ckpt errors become gRPC statuses. The code follows
 * the reason; the reason and the ids travel as trailing metadata so that a
 * client in any language can branch on them.
 */
import * as grpc from '@grpc/grpc-js';
import { CkptError, type ErrorReason } from '../core/errors.js';

/** gRPC status code for each reason. */
export const STATUS_OF_REASON: Readonly<Record<ErrorReason, grpc.status>> = {
  MALFORMED: grpc.status.INVALID_ARGUMENT,
  OVERSIZED: grpc.status.RESOURCE_EXHAUSTED,
  UNKNOWN_JOB: grpc.status.NOT_FOUND,
  UNKNOWN_TASK: grpc.status.NOT_FOUND,
  UNKNOWN_CHECKPOINT: grpc.status.NOT_FOUND,
  STALE_EPOCH: grpc.status.FAILED_PRECONDITION,
  CHECKPOINT_ABORTED: grpc.status.FAILED_PRECONDITION,
  CHECKPOINT_COMPLETED: grpc.status.FAILED_PRECONDITION,
  TASK_NOT_ATTACHED: grpc.status.FAILED_PRECONDITION,
  CONFLICTING_ACK: grpc.status.FAILED_PRECONDITION,
  JOB_EXISTS: grpc.status.ALREADY_EXISTS,
  JOB_CANCELED: grpc.status.FAILED_PRECONDITION,
  TASKS_NOT_READY: grpc.status.FAILED_PRECONDITION,
  TOO_MANY_PENDING: grpc.status.RESOURCE_EXHAUSTED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  TASK_ALREADY_ATTACHED: grpc.status.ALREADY_EXISTS,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  SHUTTING_DOWN: grpc.status.UNAVAILABLE,
  INTERNAL: grpc.status.INTERNAL,
  NOT_LEADER: grpc.status.UNAVAILABLE,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  LIMIT_REACHED: grpc.status.RESOURCE_EXHAUSTED,
  JOB_QUARANTINED: grpc.status.FAILED_PRECONDITION,
};

/** Metadata keys of an error. */
export const REASON_KEY = 'ckpt-reason';
export const JOB_ID_KEY = 'ckpt-job-id';
export const TASK_ID_KEY = 'ckpt-task-id';
export const CHECKPOINT_ID_KEY = 'ckpt-checkpoint-id';
export const EPOCH_KEY = 'ckpt-epoch';
export const RETRYABLE_KEY = 'ckpt-retryable';
/** With NOT_LEADER: the leader's advertised address. */
export const LEADER_KEY = 'ckpt-leader';

/** Turns anything thrown into a status object with reason metadata. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = CkptError.from(err);
  const metadata = new grpc.Metadata();
  metadata.set(REASON_KEY, e.reason);
  if (e.ids.jobId !== undefined) metadata.set(JOB_ID_KEY, e.ids.jobId);
  if (e.ids.taskId !== undefined) metadata.set(TASK_ID_KEY, e.ids.taskId);
  if (e.ids.checkpointId !== undefined) metadata.set(CHECKPOINT_ID_KEY, String(e.ids.checkpointId));
  if (e.ids.epoch !== undefined) metadata.set(EPOCH_KEY, String(e.ids.epoch));
  if (e.retryable) metadata.set(RETRYABLE_KEY, 'true');
  if (e.leader !== undefined) metadata.set(LEADER_KEY, e.leader);
  return { code: STATUS_OF_REASON[e.reason], details: e.message, metadata };
}
