/**
 * Waiting for one event of a worker, with a timeout and an abort signal.
 */
import type { EventEmitter } from 'node:events';
import { CkptError } from '../core/errors.js';
import { abortReason } from '../worker-protocol/sleep.js';

/** Options of `waitForEvent`. */
export interface WaitOptions {
  /** Give up after this long. Default 30000 ms. */
  timeoutMs?: number;
  /** Give up when aborted, with the signal's reason. */
  signal?: AbortSignal;
}

/** Default of `WaitOptions.timeoutMs`. */
export const DEFAULT_WAIT_MS = 30_000;

/**
 * Resolves with the arguments of the first `name` event that `match`
 * accepts. Rejects with `CkptError('UNAVAILABLE')` on timeout and with the
 * signal's reason when it aborts.
 */
export function waitForEvent<T extends Record<keyof T, unknown[]>, K extends keyof T>(
  emitter: EventEmitter<T>,
  name: K,
  match: (...args: T[K]) => boolean = () => true,
  options: WaitOptions = {},
): Promise<T[K]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  const target = emitter as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      target.off(name as string, listener);
      options.signal?.removeEventListener('abort', onAbort);
      settle();
    };
    const listener = (...args: unknown[]): void => {
      if (match(...(args as T[K]))) finish(() => resolve(args as T[K]));
    };
    const onAbort = (): void => finish(() => reject(abortReason(options.signal)));
    const timer = setTimeout(() => {
      const error = new CkptError('UNAVAILABLE', `no ${String(name)} event within ${timeoutMs} ms`, {
        retryable: true,
      });
      finish(() => reject(error));
    }, timeoutMs);
    if (options.signal?.aborted === true) {
      onAbort();
      return;
    }
    target.on(name as string, listener);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
