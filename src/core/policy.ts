/**
 * A job's checkpoint policy with every default applied. The wire form
 * (`ckpt.v1.CheckpointPolicy`) uses 0 for "default"; everything past
 * validation works with a `ResolvedPolicy`.
 */
import type { CheckpointMode__Output } from '../gen/ckpt/v1/CheckpointMode.js';
import type { CheckpointPolicy } from '../gen/ckpt/v1/CheckpointPolicy.js';
import type { AdaptiveBounds } from './adaptive-interval.js';
import { CkptError } from './errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import {
  DEFAULT_STATE_COMPRESSION,
  resolveStateCompression,
  type ExplicitStateCompression,
} from './state-compression.js';

/** @default 0 — periodic checkpoints off. */
export const DEFAULT_INTERVAL_MS = 0;
/** @default 0 */
export const DEFAULT_MIN_PAUSE_MS = 0;
/** @default 1 */
export const DEFAULT_MAX_CONCURRENT = 1;
/** @default 600000 (10 minutes, as Flink). */
export const DEFAULT_TIMEOUT_MS = 600_000;
/** @default 0 — the first failed checkpoint fails the job's attempt. */
export const DEFAULT_TOLERABLE_FAILURES = 0;
/** @default 1 */
export const DEFAULT_RETAINED = 1;
/** @default 60000 (1 minute). */
export const DEFAULT_TASK_STALL_TIMEOUT_MS = 60_000;
/** An adaptive interval's budget: @default 50 (5 % of wall time spent checkpointing). */
export const DEFAULT_BUDGET_PERMILLE = 50;
/** Upper bounds that keep a policy sane. */
export const MAX_RETAINED = 100;
export const MAX_CONCURRENT_LIMIT = 16;
export const MIN_TIMEOUT_MS = 10;
export const MIN_INTERVAL_MS = 10;

/** The policy the scheduler runs. */
export interface ResolvedPolicy {
  intervalMs: number;
  minPauseMs: number;
  maxConcurrent: number;
  timeoutMs: number;
  /** -1: unlimited. */
  tolerableFailures: number;
  retained: number;
  mode: Exclude<CheckpointMode__Output, 'CHECKPOINT_MODE_UNSPECIFIED'>;
  /** 0: every checkpoint is full. */
  fullEvery: number;
  /** A task's snapshot running longer fails the task (defaults to `timeoutMs`). */
  snapshotTimeoutMs: number;
  /** A task busy in one call, or not reported by its heartbeating worker, this long fails. */
  taskStallTimeoutMs: number;
  /** Null: the interval is `intervalMs`; else it adapts within these bounds, starting from `intervalMs`. */
  adaptive: AdaptiveBounds | null;
  /** How workers compress the job's snapshot pieces (`DEFAULT_STATE_COMPRESSION` when unspecified). */
  compression: ExplicitStateCompression;
  /** ALIGNED mode: a task waiting this long for a checkpoint's barriers takes it unaligned; 0: never. */
  alignedCheckpointTimeoutMs: number;
}

/** Upper bounds of `tolerable_failures` and `full_every`. */
export const MAX_TOLERABLE_FAILURES = 1_000_000;
export const MAX_FULL_EVERY = 1_000_000;

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new CkptError('MALFORMED', `policy.${field} ${message}`);
}

/** A wire number as given (a number, or a decimal string from JSON), refused unless an integer in [min, max]. */
function wholeNumber(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^-?\d{1,20}$/.test(value) ? Number(value) : value;
  check(
    typeof n === 'number' && Number.isSafeInteger(n) && n >= min && n <= max,
    field,
    `${typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : String(value)} must be an integer from ${min} to ${max}`,
  );
  return n as number;
}

function orDefault(n: number, fallback: number): number {
  return n === 0 ? fallback : n;
}

/**
 * Applies defaults and checks ranges; throws MALFORMED naming the field.
 * Durations are at most `maxDurationMs`; a value out of range is refused,
 * never altered.
 */
export function resolvePolicy(
  policy: CheckpointPolicy | null | undefined,
  maxDurationMs: number = DEFAULT_LIMITS.maxPolicyDurationMs,
): ResolvedPolicy {
  const p = policy ?? {};
  const duration = (value: unknown, field: string): number => wholeNumber(value ?? 0, field, 0, maxDurationMs);
  const timeoutMs = orDefault(duration(p.timeoutMs, 'timeout_ms'), DEFAULT_TIMEOUT_MS);
  const intervalMs = duration(p.intervalMs, 'interval_ms');
  const resolved: ResolvedPolicy = {
    intervalMs,
    minPauseMs: duration(p.minPauseMs, 'min_pause_ms'),
    maxConcurrent: orDefault(
      wholeNumber(p.maxConcurrent ?? 0, 'max_concurrent', 0, MAX_CONCURRENT_LIMIT),
      DEFAULT_MAX_CONCURRENT,
    ),
    timeoutMs,
    tolerableFailures: wholeNumber(p.tolerableFailures ?? 0, 'tolerable_failures', -1, MAX_TOLERABLE_FAILURES),
    retained: orDefault(wholeNumber(p.retained ?? 0, 'retained', 0, MAX_RETAINED), DEFAULT_RETAINED),
    mode: resolveMode(p.mode),
    fullEvery: wholeNumber(p.fullEvery ?? 0, 'full_every', 0, MAX_FULL_EVERY),
    snapshotTimeoutMs: orDefault(duration(p.snapshotTimeoutMs, 'snapshot_timeout_ms'), timeoutMs),
    taskStallTimeoutMs: orDefault(
      duration(p.taskStallTimeoutMs, 'task_stall_timeout_ms'),
      DEFAULT_TASK_STALL_TIMEOUT_MS,
    ),
    adaptive: resolveAdaptive(p.adaptive, intervalMs, maxDurationMs),
    compression: resolveCompression(p.compression),
    alignedCheckpointTimeoutMs: duration(p.alignedCheckpointTimeoutMs, 'aligned_checkpoint_timeout_ms'),
  };
  check(
    resolved.intervalMs === 0 || resolved.intervalMs >= MIN_INTERVAL_MS,
    'interval_ms',
    `must be 0 or at least ${MIN_INTERVAL_MS}`,
  );
  check(resolved.timeoutMs >= MIN_TIMEOUT_MS, 'timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(resolved.snapshotTimeoutMs >= MIN_TIMEOUT_MS, 'snapshot_timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(resolved.taskStallTimeoutMs >= MIN_TIMEOUT_MS, 'task_stall_timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(
    resolved.alignedCheckpointTimeoutMs === 0 || resolved.mode === 'CHECKPOINT_MODE_ALIGNED',
    'aligned_checkpoint_timeout_ms',
    `${resolved.alignedCheckpointTimeoutMs} must be 0 unless mode is CHECKPOINT_MODE_ALIGNED (only aligned checkpoints wait for alignment)`,
  );
  return resolved;
}

/**
 * An adaptive interval's bounds with defaults applied, or null when the
 * policy has none. The base interval must be set: it is the interval until
 * a checkpoint completed.
 */
function resolveAdaptive(
  value: CheckpointPolicy['adaptive'],
  intervalMs: number,
  maxDurationMs: number,
): AdaptiveBounds | null {
  if (value === null || value === undefined) return null;
  check(typeof value === 'object', 'adaptive', 'must be an AdaptiveInterval message');
  check(intervalMs > 0, 'interval_ms', 'must be above 0 with an adaptive interval: it is the one used at first');
  const duration = (v: unknown, field: string): number => wholeNumber(v ?? 0, `adaptive.${field}`, 0, maxDurationMs);
  const bounds: AdaptiveBounds = {
    minIntervalMs: orDefault(duration(value.minIntervalMs, 'min_interval_ms'), MIN_INTERVAL_MS),
    maxIntervalMs: duration(value.maxIntervalMs, 'max_interval_ms'),
    budgetPermille: orDefault(
      wholeNumber(value.budgetPermille ?? 0, 'adaptive.budget_permille', 0, 1000),
      DEFAULT_BUDGET_PERMILLE,
    ),
    replayTargetMs: duration(value.replayTargetMs, 'replay_target_ms'),
  };
  const { minIntervalMs: min, maxIntervalMs: max } = bounds;
  check(min >= MIN_INTERVAL_MS, 'adaptive.min_interval_ms', `${min} must be 0 or at least ${MIN_INTERVAL_MS}`);
  check(max === 0 || max >= min, 'adaptive.max_interval_ms', `${max} must be 0 or at least min_interval_ms ${min}`);
  return bounds;
}

function resolveMode(mode: CheckpointPolicy['mode']): ResolvedPolicy['mode'] {
  switch (mode) {
    case undefined:
    case 0:
    case 'CHECKPOINT_MODE_UNSPECIFIED':
    case 1:
    case 'CHECKPOINT_MODE_ALIGNED':
      return 'CHECKPOINT_MODE_ALIGNED';
    case 2:
    case 'CHECKPOINT_MODE_UNALIGNED':
      return 'CHECKPOINT_MODE_UNALIGNED';
    case 3:
    case 'CHECKPOINT_MODE_AT_LEAST_ONCE':
      return 'CHECKPOINT_MODE_AT_LEAST_ONCE';
    default:
      throw new CkptError('MALFORMED', `policy.mode ${String(mode)} is not a checkpoint mode`);
  }
}

/** The policy's compression, UNSPECIFIED meaning the default; MALFORMED for an unknown value. */
function resolveCompression(value: unknown): ExplicitStateCompression {
  const name = resolveStateCompression(value, 'policy.compression');
  return name === 'STATE_COMPRESSION_UNSPECIFIED' ? DEFAULT_STATE_COMPRESSION : name;
}

/** The policy written back to the wire, with the defaults filled in. */
export function policyToWire(policy: ResolvedPolicy): CheckpointPolicy {
  return { ...policy };
}
