/**
 * Per-call options of the ckpt clients and their translation to grpc-js.
 */
import * as grpc from '@grpc/grpc-js';

/** Default deadline of a unary call. */
export const DEFAULT_DEADLINE_MS = 10_000;

/** Options of one call. */
export interface CallOptions {
  /**
   * Fail with DEADLINE_EXCEEDED after this long. Default
   * `DEFAULT_DEADLINE_MS` for unary calls, none for streams. 0: no deadline.
   */
  deadlineMs?: number;
  /** Cancels the call (status CANCELLED) when aborted. */
  signal?: AbortSignal;
  /** Extra request metadata. */
  metadata?: grpc.Metadata;
}

/** The grpc-js call options for `options`, with `defaultDeadlineMs` when none is given. */
export function grpcCallOptions(options: CallOptions, defaultDeadlineMs: number): grpc.CallOptions {
  const deadlineMs = options.deadlineMs ?? defaultDeadlineMs;
  return deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {};
}

/** A copy of the caller's metadata, or empty metadata. */
export function callMetadata(options: CallOptions): grpc.Metadata {
  return options.metadata?.clone() ?? new grpc.Metadata();
}

/** Cancels `call` when `signal` aborts; returns the function that stops listening. */
export function cancelOnAbort(call: { cancel(): void }, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {};
  if (signal.aborted) {
    call.cancel();
    return () => {};
  }
  const onAbort = (): void => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
