/**
 * The pause before a job's recovery. Recoveries in a row back off, as
 * Flink's exponential-delay restart strategy does: the first starts at
 * once, each next one that follows without a completed checkpoint in
 * between (and within a minute of the last) waits twice as long, from
 * 250 ms up to 10 s. A failure that recurs on every restore (storage
 * unreachable, say) then costs a few recoveries a minute, not hundreds a
 * second.
 */
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import type { Logger } from '../log/index.js';

/** The backoff between recoveries in a row, without jitter. */
const RESTART_BACKOFF: BackoffConfig = { initialDelayMs: 250, maxDelayMs: 10_000, multiplier: 2, jitter: 0 };
/** A recovery this long after the last one starts the backoff over. */
const RESTART_BACKOFF_RESET_MS = 60_000;

/** The wait before the `n`-th recovery in a row (0-based): none, then doubling from 250 ms to 10 s. */
export function restartDelayMs(n: number): number {
  return n <= 0 ? 0 : backoffDelayMs(RESTART_BACKOFF, n - 1);
}

/** One job's restart backoff. */
export class RestartBackoff {
  private recoveriesInARow = 0;
  private lastRecoveryAtMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** A checkpoint completed: the next recovery starts at once. */
  reset(): void {
    this.recoveriesInARow = 0;
  }

  /** Counts a recovery and waits as long as the backoff says; `cancel` ends the wait early. */
  async wait(): Promise<void> {
    const now = this.now();
    if (now - this.lastRecoveryAtMs > RESTART_BACKOFF_RESET_MS) this.recoveriesInARow = 0;
    const delayMs = restartDelayMs(this.recoveriesInARow);
    this.recoveriesInARow += 1;
    this.lastRecoveryAtMs = now;
    if (delayMs === 0) return;
    this.log.info({ delayMs, recoveriesInARow: this.recoveriesInARow }, 'job recovery: backing off before the restart');
    await new Promise<void>((resolve) => {
      this.timer = setTimeout(resolve, delayMs);
      this.wake = resolve;
    });
    this.timer = undefined;
    this.wake = undefined;
  }

  /** Ends a wait in progress at once (the coordinator stops). */
  cancel(): void {
    clearTimeout(this.timer);
    this.wake?.();
  }
}
