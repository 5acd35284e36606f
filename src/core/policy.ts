/**
 * A job's checkpoint policy with every default applied. The wire form
 * (`ckpt.v1.CheckpointPolicy`) uses 0 for "default"; everything past
 * validation works with a `ResolvedPolicy`.
 */
import type { CheckpointMode__Output } from '../gen/ckpt/v1/CheckpointMode.js';
import type { CheckpointPolicy } from '../gen/ckpt/v1/CheckpointPolicy.js';
import { CkptError } from './errors.js';

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
}

function positive(value: number | undefined, fallback: number): number {
  return value === undefined || value === 0 ? fallback : value;
}

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new CkptError('MALFORMED', `policy.${field} ${message}`);
}

/** Applies defaults and checks ranges; throws MALFORMED naming the field. */
export function resolvePolicy(policy: CheckpointPolicy | null | undefined): ResolvedPolicy {
  const p = policy ?? {};
  const timeoutMs = positive(Number(p.timeoutMs ?? 0), DEFAULT_TIMEOUT_MS);
  const resolved: ResolvedPolicy = {
    intervalMs: Number(p.intervalMs ?? DEFAULT_INTERVAL_MS),
    minPauseMs: Number(p.minPauseMs ?? DEFAULT_MIN_PAUSE_MS),
    maxConcurrent: positive(p.maxConcurrent, DEFAULT_MAX_CONCURRENT),
    timeoutMs,
    tolerableFailures: p.tolerableFailures ?? DEFAULT_TOLERABLE_FAILURES,
    retained: positive(p.retained, DEFAULT_RETAINED),
    mode: resolveMode(p.mode),
    fullEvery: p.fullEvery ?? 0,
    snapshotTimeoutMs: positive(Number(p.snapshotTimeoutMs ?? 0), timeoutMs),
    taskStallTimeoutMs: positive(Number(p.taskStallTimeoutMs ?? 0), DEFAULT_TASK_STALL_TIMEOUT_MS),
  };
  check(
    resolved.intervalMs === 0 || resolved.intervalMs >= MIN_INTERVAL_MS,
    'interval_ms',
    `must be 0 or at least ${MIN_INTERVAL_MS}`,
  );
  check(resolved.timeoutMs >= MIN_TIMEOUT_MS, 'timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(resolved.snapshotTimeoutMs >= MIN_TIMEOUT_MS, 'snapshot_timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(resolved.taskStallTimeoutMs >= MIN_TIMEOUT_MS, 'task_stall_timeout_ms', `must be at least ${MIN_TIMEOUT_MS}`);
  check(resolved.maxConcurrent <= MAX_CONCURRENT_LIMIT, 'max_concurrent', `must be at most ${MAX_CONCURRENT_LIMIT}`);
  check(resolved.retained <= MAX_RETAINED, 'retained', `must be at most ${MAX_RETAINED}`);
  check(resolved.tolerableFailures >= -1, 'tolerable_failures', 'must be -1 (unlimited) or at least 0');
  return resolved;
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

/** The policy written back to the wire, with the defaults filled in. */
export function policyToWire(policy: ResolvedPolicy): CheckpointPolicy {
  return { ...policy };
}
