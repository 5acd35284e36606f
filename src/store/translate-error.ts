/**
 * The one place where errors of the etcd client become `CkptError`s. Every
 * call the store makes to etcd goes through `callEtcd`.
 */
import { ClientClosedError, isRecoverableError } from 'etcd3';
import { CkptError, type ErrorIds } from '../core/errors.js';

/** What a call to etcd was doing, for the error message and ids. */
export interface EtcdCallContext extends ErrorIds {
  /** A short description, e.g. `commit checkpoint`. */
  operation: string;
}

/**
 * What etcd (INVALID_ARGUMENT) or gRPC (RESOURCE_EXHAUSTED) say about a
 * request above their limits; no retry can help.
 */
const OVERSIZE_MESSAGES = ['request is too large', 'too many operations in txn request', 'larger than max'];

/**
 * Translates anything an etcd call threw. Connection loss, deadlines,
 * unavailability, an open circuit breaker and etcd's rate limiting become
 * UNAVAILABLE with `retryable: true`; a request etcd found too large becomes
 * OVERSIZED; a closed client SHUTTING_DOWN; the rest INTERNAL. A
 * `CkptError` passes through unchanged. The original is kept as `cause`.
 */
export function translateEtcdError(err: unknown, context: EtcdCallContext): CkptError {
  if (err instanceof CkptError) return err;
  const { operation, ...ids } = context;
  const detail = err instanceof Error ? err.message : String(err);
  const message = `etcd: ${operation} failed: ${detail}`;
  if (err instanceof ClientClosedError) {
    return new CkptError('SHUTTING_DOWN', message, { ...ids, cause: err });
  }
  if (OVERSIZE_MESSAGES.some((m) => detail.includes(m))) {
    return new CkptError('OVERSIZED', message, { ...ids, cause: err });
  }
  if (isOpenCircuit(err) || (err instanceof Error && isRecoverableError(err))) {
    return new CkptError('UNAVAILABLE', message, { ...ids, cause: err, retryable: true });
  }
  return new CkptError('INTERNAL', message, { ...ids, cause: err });
}

/** Runs one etcd call and translates whatever it throws. */
export async function callEtcd<T>(context: EtcdCallContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw translateEtcdError(err, context);
  }
}

/**
 * The client stops calling a host for a while after consecutive failures
 * and throws cockatiel's BrokenCircuitError meanwhile; recognised by its
 * marker so that cockatiel need not be a dependency of its own.
 */
function isOpenCircuit(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { isBrokenCircuitError?: unknown }).isBrokenCircuitError === true
  );
}
