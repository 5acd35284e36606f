/**
 * The one place where NATS client errors become `CkptError`s. Outages that
 * may heal (no connection, timeouts) are UNAVAILABLE and retryable; a
 * connection closed by its owner is UNAVAILABLE and final; bad subjects or
 * arguments are MALFORMED.
 */
import { errors } from '@nats-io/nats-core';
import { CkptError, type ErrorIds } from '../core/errors.js';

/** Translates anything a NATS call threw into a `CkptError` carrying it as `cause`. */
export function fromNatsError(err: unknown, action: string, ids: ErrorIds = {}): CkptError {
  if (err instanceof CkptError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  const message = `${action}: ${detail}`;
  if (err instanceof errors.InvalidSubjectError || err instanceof errors.InvalidArgumentError) {
    return new CkptError('MALFORMED', message, { ...ids, cause: err });
  }
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) {
    return new CkptError('UNAVAILABLE', message, { ...ids, cause: err, retryable: false });
  }
  if (err instanceof errors.PermissionViolationError || err instanceof errors.AuthorizationError) {
    return new CkptError('UNAVAILABLE', message, { ...ids, cause: err, retryable: false });
  }
  return new CkptError('UNAVAILABLE', message, { ...ids, cause: err, retryable: true });
}
