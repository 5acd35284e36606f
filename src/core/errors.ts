/**
 * The one error type of ckpt. Every refusal and failure the coordinator
 * raises is a `CkptError` with a stable reason; the gRPC adapter maps the
 * reason to a status code and sends it as metadata, so callers in any
 * language can branch on it.
 */

/** Stable, machine-readable reasons; mirror `ckpt.v1.ErrorReason`. */
export type ErrorReason =
  | 'MALFORMED'
  | 'OVERSIZED'
  | 'UNKNOWN_JOB'
  | 'UNKNOWN_TASK'
  | 'UNKNOWN_CHECKPOINT'
  | 'STALE_EPOCH'
  | 'CHECKPOINT_ABORTED'
  | 'CHECKPOINT_COMPLETED'
  | 'TASK_NOT_ATTACHED'
  | 'CONFLICTING_ACK'
  | 'JOB_EXISTS'
  | 'JOB_CANCELED'
  | 'TASKS_NOT_READY'
  | 'TOO_MANY_PENDING'
  | 'UNAUTHENTICATED'
  | 'TASK_ALREADY_ATTACHED'
  | 'UNAVAILABLE'
  | 'SHUTTING_DOWN'
  | 'INTERNAL'
  | 'NOT_LEADER'
  | 'PERMISSION_DENIED'
  | 'LIMIT_REACHED'
  | 'JOB_QUARANTINED'
  | 'CANCELED'
  | 'TAKING_OVER';

/** The ids an error concerns, as far as known. */
export interface ErrorIds {
  jobId?: string;
  taskId?: string;
  checkpointId?: number;
  epoch?: number;
}

/** Options of a `CkptError`. */
export interface CkptErrorOptions extends ErrorIds {
  /** The error this one translates. */
  cause?: unknown;
  /** Whether the same call may succeed if retried later. Default: false. */
  retryable?: boolean;
  /** With NOT_LEADER: the leader's advertised address, when known. */
  leader?: string;
}

/** An error with a stable reason, the ids it concerns, and retryability. */
export class CkptError extends Error {
  override readonly name = 'CkptError';
  readonly reason: ErrorReason;
  readonly ids: ErrorIds;
  readonly retryable: boolean;
  /** With NOT_LEADER: the leader's advertised address, when known. */
  readonly leader: string | undefined;

  constructor(reason: ErrorReason, message: string, options: CkptErrorOptions = {}) {
    super(`${reason}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
    this.retryable = options.retryable ?? false;
    this.leader = options.leader;
    const ids: ErrorIds = {};
    if (options.jobId !== undefined) ids.jobId = options.jobId;
    if (options.taskId !== undefined) ids.taskId = options.taskId;
    if (options.checkpointId !== undefined) ids.checkpointId = options.checkpointId;
    if (options.epoch !== undefined) ids.epoch = options.epoch;
    this.ids = ids;
  }

  /** Wraps anything thrown into a `CkptError`, keeping it as `cause`. */
  static from(err: unknown, reason: ErrorReason = 'INTERNAL'): CkptError {
    if (err instanceof CkptError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new CkptError(reason, message, { cause: err });
  }
}

/** True when `err` is a `CkptError` with one of the given reasons. */
export function hasReason(err: unknown, ...reasons: ErrorReason[]): err is CkptError {
  return err instanceof CkptError && reasons.includes(err.reason);
}

/**
 * A write guarded by the leader's election key was refused because the key
 * changed: the writer is no longer the leader and must step down. Its
 * reason is UNAVAILABLE (not retryable): the write did not happen.
 */
export class LeadershipLostError extends CkptError {
  constructor(message: string, options: Omit<CkptErrorOptions, 'retryable'> = {}) {
    super('UNAVAILABLE', message, { ...options, retryable: false });
  }
}

/**
 * STALE_EPOCH from an epoch bump: the stored epoch was `current`, not the
 * one expected. Under the same leadership it is the coordinator's own bump
 * whose reply was lost; it bumps again from `current`.
 */
export class StaleEpochError extends CkptError {
  /** The epoch stored when the bump was refused. */
  readonly current: number;

  constructor(message: string, current: number, options: Omit<CkptErrorOptions, 'retryable'> = {}) {
    super('STALE_EPOCH', message, options);
    this.current = current;
  }
}
