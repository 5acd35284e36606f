/**
 * Waiting for one event of an emitter with a timeout and an abort signal.
 */
import type { EventEmitter } from 'node:events';
import { CkptError } from '../../src/core/errors.js';

/** Options of the waits of a simulated worker. */
export interface WaitOptions {
  /** Give up after this long. Default 30000 ms. */
  timeoutMs?: number | undefined;
  /** Give up when aborted, with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** Default of `WaitOptions.timeoutMs`. */
export const DEFAULT_WAIT_MS = 30_000;

/**
 * Resolves with the arguments of the first `name` event that `match`
 * accepts. Rejects with `CkptError('UNAVAILABLE')` on timeout and with the
 * signal's reason when it aborts.
 */
export function waitForEvent<T extends Record<keyof T, unknown[]>, K extends keyof T & string>(
  emitter: EventEmitter<T>,
  name: K,
  match: (args: T[K]) => boolean,
  options: WaitOptions = {},
): Promise<T[K]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  return new Promise((resolve, reject) => {
    const target = emitter as unknown as EventEmitter;
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      target.off(name, listener);
      options.signal?.removeEventListener('abort', onAbort);
      settle();
    };
    const listener = (...args: unknown[]): void => {
      if (match(args as T[K])) finish(() => resolve(args as T[K]));
    };
    const onAbort = (): void => finish(() => reject(abortError(options.signal)));
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(new CkptError('UNAVAILABLE', `no ${name} event within ${timeoutMs} ms`, { retryable: true })),
        ),
      timeoutMs,
    );
    if (options.signal?.aborted === true) return onAbort();
    target.on(name, listener);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}
