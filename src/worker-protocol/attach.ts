/**
 * One attach of a worker session: waiting for the welcome that must answer
 * a hello, and what a failed attach or a lost stream means (a refusal for
 * good, or one a reconnect may heal).
 */
import * as grpc from '@grpc/grpc-js';
import { errorInfo, FINAL_SESSION_REASONS, type AttachStream } from '../client/index.js';
import { CkptError } from '../core/errors.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';

/** A session error as a `CkptError` with the coordinator's reason when it sent one. */
export function sessionError(err: unknown): CkptError {
  if (err instanceof CkptError) return err;
  const info = errorInfo(err);
  if (info === undefined) return CkptError.from(err, 'UNAVAILABLE');
  const reason = info.reason ?? (info.code === grpc.status.UNAUTHENTICATED ? 'UNAUTHENTICATED' : 'UNAVAILABLE');
  return new CkptError(reason, info.message, {
    ...info.ids,
    cause: err,
    retryable: !FINAL_SESSION_REASONS.has(reason),
  });
}

/** True for a refusal no reconnect can fix. */
export function isFatal(error: CkptError): boolean {
  return FINAL_SESSION_REASONS.has(error.reason);
}

/** Resolves with `onWelcome` of the first response, which must be a welcome. */
export function awaitWelcome<T>(
  call: AttachStream,
  timeoutMs: number | undefined,
  onWelcome: (welcome: Welcome__Output) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      call.off('data', onData);
      call.off('error', onError);
      call.off('end', onEnd);
    };
    const onData = (message: AttachResponse__Output): void => {
      cleanup();
      if (!message.welcome) {
        reject(new CkptError('MALFORMED', `expected a welcome, got ${message.body ?? 'nothing'}`));
        return;
      }
      try {
        resolve(onWelcome(message.welcome));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new CkptError('UNAVAILABLE', 'the coordinator ended the session before its welcome', { retryable: true }));
    };
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            cleanup();
            reject(new CkptError('UNAVAILABLE', `no welcome within ${timeoutMs} ms`, { retryable: true }));
          }, timeoutMs);
    call.on('data', onData);
    call.on('error', onError);
    call.on('end', onEnd);
  });
}
