/**
 * Exponential backoff with jitter, for reconnecting the worker session and
 * retrying acknowledgements.
 */
import { CkptError } from '../core/errors.js';

/** How long to wait between attempts. */
export interface BackoffOptions {
  /** Delay before the first retry. Default 100 ms. */
  initialDelayMs?: number;
  /**
   * Largest delay. Default 1000 ms: a session looks for a new leader during
   * a fail-over, and a longer wait would delay resuming after the election.
   */
  maxDelayMs?: number;
  /** Factor between consecutive delays. Default 2. */
  multiplier?: number;
  /** Each delay varies randomly by up to this fraction of itself. Default 0.2. */
  jitter?: number;
}

/** `BackoffOptions` with every default applied. */
export type BackoffConfig = Required<BackoffOptions>;

/** The defaults of `BackoffOptions`. */
export const DEFAULT_BACKOFF: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.2 };

/** Applies defaults and validates; errors name the option under `what`. */
export function resolveBackoff(options: BackoffOptions = {}, what = 'reconnect'): BackoffConfig {
  const config = { ...DEFAULT_BACKOFF, ...definedOnly(options) };
  const bad = (field: string, value: number): CkptError =>
    new CkptError('MALFORMED', `${what}.${field}: ${value} is out of range`);
  if (!(config.initialDelayMs >= 0)) throw bad('initialDelayMs', config.initialDelayMs);
  if (!(config.maxDelayMs >= config.initialDelayMs)) throw bad('maxDelayMs', config.maxDelayMs);
  if (!(config.multiplier >= 1)) throw bad('multiplier', config.multiplier);
  if (!(config.jitter >= 0 && config.jitter <= 1)) throw bad('jitter', config.jitter);
  return config;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelayMs(config: BackoffConfig, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(config.maxDelayMs, config.initialDelayMs * config.multiplier ** Math.max(0, attempt));
  const spread = base * config.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The reason a signal aborted, as an Error. */
export function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new CkptError('SHUTTING_DOWN', `aborted: ${String(reason)}`);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
