/**
 * The one place where ckpt errors become gRPC statuses. The code follows
 * the reason; the reason and the ids travel as trailing metadata so that a
 * client in any language can branch on them.
 */
import * as grpc from '@grpc/grpc-js';
import { ERROR_METADATA } from '../core/error-metadata.js';
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
  CANCELED: grpc.status.CANCELLED,
  TAKING_OVER: grpc.status.UNAVAILABLE,
};

/** A UTF-16 surrogate without its pair: not encodable as UTF-8. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Longest metadata value sent; longer ones are cut (ids are at most 128 characters). */
export const MAX_METADATA_VALUE_CHARS = 256;
/** Longest status message sent; longer ones are cut. */
export const MAX_STATUS_DETAILS_CHARS = 4096;

/**
 * A value that grpc-js accepts in metadata: printable ASCII, with every
 * other character (and `%`) percent-encoded as UTF-8, cut to
 * `MAX_METADATA_VALUE_CHARS`. A value from a caller can hold anything;
 * grpc-js throws on the rest.
 */
export function metadataValue(value: string): string {
  const safe = value.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
  return safe.length > MAX_METADATA_VALUE_CHARS ? safe.slice(0, MAX_METADATA_VALUE_CHARS) : safe;
}

/**
 * Turns anything thrown into a status object with reason metadata. Never
 * throws: whatever an error carries is made safe for the wire first.
 */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = CkptError.from(err);
  const metadata = new grpc.Metadata();
  const set = (key: string, value: string | number | undefined): void => {
    if (value !== undefined) metadata.set(key, metadataValue(String(value)));
  };
  set(ERROR_METADATA.reason, e.reason);
  set(ERROR_METADATA.jobId, e.ids.jobId);
  set(ERROR_METADATA.taskId, e.ids.taskId);
  set(ERROR_METADATA.checkpointId, e.ids.checkpointId);
  set(ERROR_METADATA.epoch, e.ids.epoch);
  if (e.retryable) set(ERROR_METADATA.retryable, 'true');
  set(ERROR_METADATA.leader, e.leader);
  // grpc-js sends the details through encodeURI, which throws on a lone surrogate.
  const message = e.message.replace(LONE_SURROGATE, '\uFFFD');
  const details = message.length > MAX_STATUS_DETAILS_CHARS ? message.slice(0, MAX_STATUS_DETAILS_CHARS) : message;
  return { code: STATUS_OF_REASON[e.reason] ?? grpc.status.INTERNAL, details, metadata };
}
