/**
 * Exponential backoff with jitter: the one computation of the delays
 * between attempts, for the worker's reconnects and acknowledgements, the
 * clients' retries, the coordinator's periodic trigger and restarts, and
 * the election's watches.
 */
import { CkptError } from './errors.js';

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

/** The delay before retry number `attempt` (0 for the first retry); without jitter, `random` is not called. */
export function backoffDelayMs(config: BackoffConfig, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(config.maxDelayMs, config.initialDelayMs * config.multiplier ** Math.max(0, attempt));
  const spread = config.jitter === 0 ? 0 : base * config.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}

/** Bounds of the backoff between failed periodic triggers. */
const MIN_TRIGGER_RETRY_MS = 100;
const MAX_TRIGGER_RETRY_MS = 5000;

/**
 * When a periodic trigger that failed `failures` times in a row (etcd
 * unreachable while reserving ids, say) is tried again: after a delay
 * that doubles from 100 ms up to the checkpoint interval, at most 5 s.
 */
export function periodicTriggerRetryMs(failures: number, intervalMs: number): number {
  const maxDelayMs = Math.min(MAX_TRIGGER_RETRY_MS, Math.max(MIN_TRIGGER_RETRY_MS, intervalMs));
  const config: BackoffConfig = { initialDelayMs: MIN_TRIGGER_RETRY_MS, maxDelayMs, multiplier: 2, jitter: 0 };
  return backoffDelayMs(config, failures - 1);
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
