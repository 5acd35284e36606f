/**
 * Logging what a worker drops from NATS without letting the drops flood the
 * log: a flood of junk must cost a line once in a while, not a line per
 * message. Drops are counted per kind of message and severity; a line is
 * written for the first drop and then at most once per interval, with the
 * count dropped since the last line and the reasons.
 */
import type { Logger } from '../log/index.js';

/** Default interval between two lines of one kind of drop. */
export const DEFAULT_DROP_LOG_INTERVAL_MS = 10_000;

/**
 * Why a message was dropped. Junk (bytes that do not decode, a record or
 * barrier without an epoch header, another job's message, a barrier from
 * another sender, an implausible id, a term the
 * session never confirmed, a completion of a checkpoint the worker did not
 * acknowledge, a handler that threw) is logged as a warning; what the
 * protocol drops in its normal course (a deposed leader's message, one of
 * another epoch, a trigger taken already) at debug level.
 */
export type DropReason =
  | 'undecodable'
  | 'unmarked'
  | 'other-job'
  | 'other-sender'
  | 'implausible-id'
  | 'unconfirmed-term'
  | 'not-acknowledged'
  | 'aborted'
  | 'failed'
  | 'stale-term'
  | 'other-epoch'
  | 'duplicate';

/** What was dropped: the kind of message, why, and what it claimed. */
export interface Drop {
  /** `trigger`, `complete`, `abort`, `recover`, `barrier` or `record`. */
  kind: string;
  reason: DropReason;
  term?: number;
  epoch?: number;
  checkpointId?: number;
  /** The data subject's edge, for a barrier or record. */
  edge?: string;
  /** What a handler threw (`failed`). */
  error?: unknown;
}

/** Options of a `DropLog`. */
export interface DropLogOptions {
  /** Least time between two lines of one kind and severity. Default `DEFAULT_DROP_LOG_INTERVAL_MS`. */
  intervalMs?: number;
  /** The clock. Default `Date.now`. */
  now?: () => number;
}

const ROUTINE: ReadonlySet<DropReason> = new Set<DropReason>(['stale-term', 'other-epoch', 'duplicate']);

interface Tally {
  count: number;
  reasons: Partial<Record<DropReason, number>>;
  last: Drop | undefined;
  loggedAt: number;
}

/** Counts drops and logs them at most once per interval per kind and severity. */
export class DropLog {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #tallies = new Map<string, Tally>();

  /** `logger`: where the lines go. */
  constructor(logger: Logger, options: DropLogOptions = {}) {
    this.#logger = logger;
    this.#intervalMs = options.intervalMs ?? DEFAULT_DROP_LOG_INTERVAL_MS;
    this.#now = options.now ?? Date.now;
  }

  /** True for a reason the protocol drops in its normal course (logged at debug level). */
  static routine(reason: DropReason): boolean {
    return ROUTINE.has(reason);
  }

  /** Counts one drop; writes a line when the interval since the last one of its kind has passed. */
  drop(drop: Drop): void {
    const key = `${drop.kind}:${DropLog.routine(drop.reason) ? 'routine' : 'junk'}`;
    let tally = this.#tallies.get(key);
    if (tally === undefined) {
      tally = { count: 0, reasons: {}, last: undefined, loggedAt: Number.NEGATIVE_INFINITY };
      this.#tallies.set(key, tally);
    }
    tally.count += 1;
    tally.reasons[drop.reason] = (tally.reasons[drop.reason] ?? 0) + 1;
    tally.last = drop;
    const now = this.#now();
    if (now - tally.loggedAt >= this.#intervalMs) this.#write(tally, now);
  }

  /** Writes a line for every kind with drops not logged yet (when the worker stops). */
  flush(): void {
    const now = this.#now();
    for (const tally of this.#tallies.values()) if (tally.count > 0) this.#write(tally, now);
  }

  #write(tally: Tally, now: number): void {
    const last = tally.last;
    if (last === undefined) return;
    const { kind, reason, error, ...claimed } = last;
    const fields = { kind, dropped: tally.count, reasons: tally.reasons, last: { reason, ...claimed } };
    tally.count = 0;
    tally.reasons = {};
    tally.loggedAt = now;
    if (DropLog.routine(reason) && error === undefined) {
      this.#logger.debug(fields, `${kind} messages dropped`);
    } else {
      this.#logger.warn({ ...fields, ...(error === undefined ? {} : { err: error }) }, `${kind} messages dropped`);
    }
  }
}
