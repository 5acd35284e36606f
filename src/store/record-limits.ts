/**
 * The ranges a number read back from etcd must lie in before anything
 * uses it.
 */

/**
 * Largest epoch, checkpoint id or id floor a job's records may hold: 2^52,
 * half the range of exact integers, so that what the coordinator adds to
 * one (the next epoch, a block of reserved ids) is still exact and can be
 * stored. A job counting one checkpoint per millisecond reaches it after
 * 140,000 years.
 */
export const MAX_STORED_COUNTER = 2 ** 52;

/**
 * Most keys read under one job's `checkpoints/`: each retained checkpoint
 * has two (root and summary), and a policy retains at most 100. A job with
 * more is quarantined rather than read without bound.
 */
export const MAX_CHECKPOINT_KEYS = 1_000;

/** Latest time a stored timestamp may name: the last millisecond a `Date` can hold. */
export const MAX_TIME_MS = 8_640_000_000_000_000;

/** True when `n` is an integer in `[min, max]` (and so exact). */
export function inRange(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}
