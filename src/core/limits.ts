/**
 * Upper limits on what callers can make a coordinator hold or do. Each is
 * configurable (see `src/config`); a request past one is refused with
 * OVERSIZED, LIMIT_REACHED or MALFORMED naming the limit, and changes
 * nothing.
 */
import { CkptError, type ErrorIds } from './errors.js';

/** The limits a coordinator enforces. */
export interface Limits {
  /** Most jobs it holds: running, canceled and quarantined. @default 1000 */
  maxJobs: number;
  /** Most tasks of one job. @default 100000 */
  maxTasksPerJob: number;
  /** Most live worker sessions, over every job. @default 10000 */
  maxSessions: number;
  /** Most standbys waiting for the tasks of one job. @default 64 */
  maxStandbysPerJob: number;
  /** Most `WatchCheckpoints` streams open at once. @default 256 */
  maxWatchers: number;
  /**
   * Bytes of acknowledgements a job's pending checkpoints may hold (their
   * encoded size, approximately); an acknowledgement past it is refused.
   * @default 268435456 (256 MiB)
   */
  maxPendingAckBytesPerJob: number;
  /** Longest decline or task failure message, in UTF-8 bytes. @default 4096 */
  maxMessageTextBytes: number;
  /** Longest duration in a checkpoint policy. @default 604800000 (7 days) */
  maxPolicyDurationMs: number;
  /** Largest snapshot size an acknowledgement may report. @default 1099511627776 (1 TiB) */
  maxStateBytes: number;
  /**
   * Bytes a stream's replies may wait unread by its client (a session, a
   * watcher) before the coordinator ends the stream with LIMIT_REACHED.
   * @default 16777216 (16 MiB)
   */
  maxUnreadReplyBytes: number;
}

/** @default limits of a coordinator. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxJobs: 1000,
  maxTasksPerJob: 100_000,
  maxSessions: 10_000,
  maxStandbysPerJob: 64,
  maxWatchers: 256,
  maxPendingAckBytesPerJob: 256 * 1024 * 1024,
  maxMessageTextBytes: 4096,
  maxPolicyDurationMs: 7 * 24 * 60 * 60 * 1000,
  maxStateBytes: 1024 ** 4,
  maxUnreadReplyBytes: 16 * 1024 * 1024,
});

/**
 * The largest value any configuration may give each limit. Records read
 * back from etcd are checked against these (a coordinator configured more
 * strictly than the one that wrote them checks them again itself).
 */
export const CEILING_LIMITS: Readonly<Limits> = Object.freeze({
  maxJobs: 1_000_000,
  maxTasksPerJob: 1_000_000,
  maxSessions: 1_000_000,
  maxStandbysPerJob: 100_000,
  maxWatchers: 100_000,
  maxPendingAckBytesPerJob: 16 * 1024 ** 3,
  maxMessageTextBytes: 64 * 1024,
  maxPolicyDurationMs: 365 * 24 * 60 * 60 * 1000,
  maxStateBytes: Number.MAX_SAFE_INTEGER,
  maxUnreadReplyBytes: 1024 ** 3,
});

/** The limits of a job spec. */
export type SpecLimits = Pick<Limits, 'maxTasksPerJob' | 'maxPolicyDurationMs'>;

/**
 * Throws MALFORMED unless `value` is an integer from 0 to `max` (at most
 * 2^53-1). Protobuf 64-bit integers arrive as JavaScript numbers: above
 * 2^53 they are rounded, so anything above is refused, never altered.
 */
export function checkCount(value: unknown, field: string, max = Number.MAX_SAFE_INTEGER, ids: ErrorIds = {}): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new CkptError('MALFORMED', `${field} ${String(value)} must be an integer from 0 to ${max}`, ids);
  }
  return value;
}

/** Throws OVERSIZED when `text` is longer than `maxBytes` in UTF-8. */
export function checkTextBytes(text: string, maxBytes: number, field: string, ids: ErrorIds = {}): string {
  // A string has at least as many UTF-8 bytes as code units / 1 and at most 3 per unit.
  if (text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes)) {
    throw new CkptError('OVERSIZED', `${field} is longer than ${maxBytes} bytes`, ids);
  }
  return text;
}
