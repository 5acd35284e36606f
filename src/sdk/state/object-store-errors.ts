/**
 * The one place where errors of the NATS object store client become
 * `CkptError`s. A lost connection, timeouts, missing responders, missed
 * heartbeats and JetStream answering 503 or running out of resources may
 * clear up: UNAVAILABLE and retryable. A connection closed by its owner and
 * refused permissions are UNAVAILABLE and final; invalid names MALFORMED;
 * the rest INTERNAL.
 */
import { errors } from '@nats-io/nats-core';
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { CkptError, type ErrorIds } from '../../core/errors.js';

/** What an object store call was doing, for the error message and ids. */
export interface ObjectStoreCallContext extends ErrorIds {
  /** A short description naming the uri or bucket, e.g. `put nats-obj://b/j/t/3-1`. */
  operation: string;
}

/** JetStream's error code for a server or account out of storage. */
const INSUFFICIENT_RESOURCES = 10_047;

/** Names of errors of the clients that are not exported as classes. */
const TRANSIENT_NAMES = new Set(['JetStreamNotEnabled', 'JetStreamStatusError']);

/** Translates anything an object store call threw; a `CkptError` passes unchanged. */
export function translateObjectStoreError(err: unknown, context: ObjectStoreCallContext): CkptError {
  if (err instanceof CkptError) return err;
  const { operation, ...ids } = context;
  const detail = err instanceof Error ? err.message : String(err);
  const options = { ...ids, cause: err };
  const message = `${operation} failed: ${detail}`;
  if (isFinalUnavailable(err)) return new CkptError('UNAVAILABLE', message, options);
  if (isTransient(err)) return new CkptError('UNAVAILABLE', message, { ...options, retryable: true });
  if (err instanceof errors.InvalidSubjectError || err instanceof errors.InvalidArgumentError) {
    return new CkptError('MALFORMED', message, options);
  }
  return new CkptError('INTERNAL', message, options);
}

/** Runs one object store call and translates whatever it throws. */
export async function callObjectStore<T>(context: ObjectStoreCallContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw translateObjectStoreError(err, context);
  }
}

function isFinalUnavailable(err: unknown): boolean {
  return (
    err instanceof errors.ClosedConnectionError ||
    err instanceof errors.DrainingConnectionError ||
    err instanceof errors.PermissionViolationError ||
    err instanceof errors.AuthorizationError
  );
}

function isTransient(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === INSUFFICIENT_RESOURCES;
  return (
    err instanceof errors.TimeoutError ||
    err instanceof errors.NoRespondersError ||
    err instanceof errors.RequestError ||
    err instanceof errors.ConnectionError ||
    err instanceof JetStreamError ||
    (err instanceof Error && TRANSIENT_NAMES.has(err.name))
  );
}
