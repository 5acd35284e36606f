/**
 * Reading the coordinator's errors on the client side: the one translation
 * of a failed call into a `CkptError`. The coordinator sends a
 * machine-readable reason, the ids an error concerns, whether the request
 * may succeed later, and a standby the leader's address, in the trailing
 * metadata keys of `ERROR_METADATA` (see coordinator.proto).
 */
import * as grpc from '@grpc/grpc-js';
import { ERROR_METADATA } from '../core/error-metadata.js';
import { CkptError, type ErrorIds, type ErrorReason } from '../core/errors.js';
import { ErrorReason as WireErrorReason } from '../gen/ckpt/v1/ErrorReason.js';

/** Metadata key of the reason. */
export const REASON_METADATA = ERROR_METADATA.reason;
/** Metadata key of the job id an error concerns. */
export const JOB_ID_METADATA = ERROR_METADATA.jobId;
/** Metadata key of the task id an error concerns. */
export const TASK_ID_METADATA = ERROR_METADATA.taskId;
/** Metadata key of the checkpoint id an error concerns. */
export const CHECKPOINT_ID_METADATA = ERROR_METADATA.checkpointId;
/** Metadata key of the epoch an error concerns. */
export const EPOCH_METADATA = ERROR_METADATA.epoch;
/** Metadata key that is "true" when the same request may succeed later. */
export const RETRYABLE_METADATA = ERROR_METADATA.retryable;
/** Metadata key of the leader's address in a NOT_LEADER refusal. */
export const LEADER_METADATA = ERROR_METADATA.leader;

/** The reasons a client knows, without the ERROR_REASON_ prefix. */
export const REASONS: ReadonlySet<string> = new Set<string>(
  Object.keys(WireErrorReason)
    .map((name) => name.replace(/^ERROR_REASON_/, ''))
    .filter((name) => name !== 'UNSPECIFIED'),
);

/**
 * Refusals of a worker's session that no reconnect can fix: a worker (the
 * SDK's and the simulated one alike) stops on them instead of attaching
 * again. Every other refusal, and a transport failure, is retried.
 */
export const FINAL_SESSION_REASONS: ReadonlySet<ErrorReason> = new Set<ErrorReason>([
  'MALFORMED',
  'OVERSIZED',
  'UNKNOWN_JOB',
  'UNKNOWN_TASK',
  'JOB_CANCELED',
  'UNAUTHENTICATED',
  // A session is refused PERMISSION_DENIED only when the access policy gives its caller no worker role on the job.
  'PERMISSION_DENIED',
]);

/** What a failed call reports. */
export interface RemoteErrorInfo {
  /** The gRPC status code. */
  code: grpc.status;
  /** The coordinator's reason; undefined when the error did not come from it (e.g. a transport failure). */
  reason: ErrorReason | undefined;
  ids: ErrorIds;
  /** The status details. */
  message: string;
  /** The coordinator said the same request may succeed later (`ckpt-retryable`). */
  retryable: boolean;
  /** With NOT_LEADER: the leader's address, when the refusing coordinator knows it. */
  leader?: string;
}

/** True when `err` is a grpc-js `ServiceError` (a failed call). */
export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'metadata' in err;
}

/** True when `err` is a call that failed with CANCELLED. */
export function isCancelled(err: unknown): boolean {
  return isServiceError(err) && err.code === grpc.status.CANCELLED;
}

/** The reason of a failed call (or of a `CkptError`), or undefined when it carries none. */
export function errorReason(err: unknown): ErrorReason | undefined {
  if (err instanceof CkptError) return err.reason;
  return errorInfo(err)?.reason;
}

/** Code, reason, ids and details of a failed call; undefined when `err` is no `ServiceError`. */
export function errorInfo(err: unknown): RemoteErrorInfo | undefined {
  if (!isServiceError(err)) return undefined;
  const md = err.metadata as grpc.Metadata | undefined;
  const raw = md === undefined ? undefined : first(md, REASON_METADATA);
  const reason = raw !== undefined && REASONS.has(raw) ? (raw as ErrorReason) : undefined;
  const info: RemoteErrorInfo = {
    code: err.code,
    reason,
    ids: md === undefined ? {} : idsOf(md),
    message: err.details,
    retryable: md !== undefined && first(md, RETRYABLE_METADATA) === 'true',
  };
  const leader = md === undefined ? undefined : first(md, LEADER_METADATA);
  if (leader !== undefined) info.leader = leader;
  return info;
}

/**
 * Turns a failed call into a `CkptError` with the coordinator's reason, or,
 * when it sent none, a reason derived from the status code (CANCELED for a
 * call its caller canceled). It is retryable when the coordinator said so,
 * and after UNAVAILABLE or DEADLINE_EXCEEDED.
 */
export function toCkptError(err: unknown): CkptError {
  if (err instanceof CkptError) return err;
  const info = errorInfo(err);
  if (info === undefined) return CkptError.from(err);
  const transient = info.code === grpc.status.UNAVAILABLE || info.code === grpc.status.DEADLINE_EXCEEDED;
  const reason = info.reason ?? reasonOf(info);
  const message = info.message.startsWith(`${reason}: `) ? info.message.slice(reason.length + 2) : info.message;
  return new CkptError(reason, message, {
    ...info.ids,
    cause: err,
    retryable: info.retryable || transient || reason === 'UNAVAILABLE',
    ...(info.leader === undefined ? {} : { leader: info.leader }),
  });
}

/**
 * grpc-js's details of a call that its caller canceled. A call the server
 * side reset (a coordinator that went away) also ends CANCELLED, with other
 * details: that one is UNAVAILABLE, and retryable.
 */
const CANCELED_ON_CLIENT = 'Cancelled on client';

function reasonOf(info: RemoteErrorInfo): ErrorReason {
  switch (info.code) {
    case grpc.status.CANCELLED:
      return info.message === CANCELED_ON_CLIENT ? 'CANCELED' : 'UNAVAILABLE';
    case grpc.status.UNAUTHENTICATED:
      return 'UNAUTHENTICATED';
    case grpc.status.PERMISSION_DENIED:
      return 'PERMISSION_DENIED';
    case grpc.status.INVALID_ARGUMENT:
      return 'MALFORMED';
    case grpc.status.RESOURCE_EXHAUSTED:
      return 'OVERSIZED';
    case grpc.status.UNAVAILABLE:
    case grpc.status.DEADLINE_EXCEEDED:
      return 'UNAVAILABLE';
    default:
      return 'INTERNAL';
  }
}

function idsOf(md: grpc.Metadata): ErrorIds {
  const ids: ErrorIds = {};
  const jobId = first(md, JOB_ID_METADATA);
  const taskId = first(md, TASK_ID_METADATA);
  const checkpointId = numeric(first(md, CHECKPOINT_ID_METADATA));
  const epoch = numeric(first(md, EPOCH_METADATA));
  if (jobId !== undefined) ids.jobId = jobId;
  if (taskId !== undefined) ids.taskId = taskId;
  if (checkpointId !== undefined) ids.checkpointId = checkpointId;
  if (epoch !== undefined) ids.epoch = epoch;
  return ids;
}

function first(md: grpc.Metadata, key: string): string | undefined {
  const value = md.get(key)[0];
  if (value === undefined || value === '') return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

function numeric(value: string | undefined): number | undefined {
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}
