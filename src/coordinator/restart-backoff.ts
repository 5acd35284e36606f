/**
 * The pause before a job's recovery. Recoveries in a row back off, much as
 * Flink's exponential-delay restart strategy does: the first starts at
 * once; each next one waits twice as long as the one before, from 250 ms
 * up to 4 s, with ±20 % jitter so that many jobs failing together do not
 * restore in step. The backoff starts over after a completed checkpoint
 * (the job made progress since its last recovery), and when the job ran
 * for 5 s since its last recovery went ahead (Flink's reset threshold, but
 * short: a failure that recurs on every restore recurs within moments).
 *
 * A crash loop (storage unreachable on every restore, say) thus costs at
 * most about fifteen recoveries a minute, not hundreds a second; while
 * unrelated faults that come a few seconds apart (a coordinator paused,
 * NATS restarted) cost no more than 250 ms each, and a recovery after
 * progress none, so that the time without a commit stays short.
 */
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import type { Logger } from '../log/index.js';

/** The backoff between recoveries in a row. */
export const RESTART_BACKOFF: BackoffConfig = { initialDelayMs: 250, maxDelayMs: 4000, multiplier: 2, jitter: 0.2 };
/** A recovery this long after the last one went ahead starts the backoff over. */
export const RESTART_BACKOFF_RESET_MS = 5000;

/**
 * The wait before the `n`-th recovery in a row (0-based): none, then
 * doubling from 250 ms to 4 s, each ±20 % (`random` draws the jitter).
 */
export function restartDelayMs(n: number, random: () => number = Math.random): number {
  return n <= 0 ? 0 : backoffDelayMs(RESTART_BACKOFF, n - 1, random);
}

/** One job's restart backoff. */
export class RestartBackoff {
  private recoveriesInARow = 0;
  /** When the last recovery went ahead (its wait ended); 0 before the first. */
  private lastRecoveryAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly now: () => number,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  /** A checkpoint completed: the next recovery starts at once. */
  reset(): void {
    this.recoveriesInARow = 0;
  }

  /** Counts a recovery and waits as long as the backoff says; `cancel` ends the wait early. */
  async wait(): Promise<void> {
    if (this.now() - this.lastRecoveryAtMs >= RESTART_BACKOFF_RESET_MS) this.recoveriesInARow = 0;
    const delayMs = restartDelayMs(this.recoveriesInARow, this.random);
    this.recoveriesInARow += 1;
    if (delayMs > 0) {
      this.log.info(
        { delayMs, recoveriesInARow: this.recoveriesInARow },
        'job recovery: backing off before the restart',
      );
      await new Promise<void>((resolve) => {
        this.timer = setTimeout(resolve, delayMs);
        this.wake = resolve;
      });
      this.timer = undefined;
      this.wake = undefined;
    }
    this.lastRecoveryAtMs = this.now();
  }

  /** Ends a wait in progress at once (the coordinator stops). */
  cancel(): void {
    clearTimeout(this.timer);
    this.wake?.();
  }
}
