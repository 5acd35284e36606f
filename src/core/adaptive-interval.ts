/**
 * The interval between a job's periodic checkpoints, fixed by its policy or
 * adapted to how long its checkpoints take (`ckpt.v1.AdaptiveInterval`).
 * Pure: the schedule feeds it the durations of completed checkpoints and
 * asks it for the interval in force and why, which `GetJob` shows and the
 * coordinator logs when it changes.
 */

/** An adaptive policy's bounds with every default applied. */
export interface AdaptiveBounds {
  /** The shortest interval chosen. */
  minIntervalMs: number;
  /** The longest interval chosen; 0: no bound of its own. */
  maxIntervalMs: number;
  /** The most of wall time spent checkpointing, in thousandths (1 to 1000). */
  budgetPermille: number;
  /** The most a job should replay after a failure; 0: no target. */
  replayTargetMs: number;
}

/** The interval in force and the reason for it, in words for people. */
export interface IntervalChoice {
  /** 0: periodic checkpoints are off. */
  intervalMs: number;
  reason: string;
}

/**
 * How many of the most recent completed checkpoints the duration figure is
 * the median of: enough that one slow or fast outlier does not move it,
 * few enough that a lasting change shows within a handful of checkpoints.
 */
export const DURATION_WINDOW = 5;

/** The median of `samples` (the mean of the middle two for an even count); NaN for none. */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length % 2 === 1) return sorted[mid] ?? NaN;
  return ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** A budget in thousandths as a percentage: 50 → "5%", 25 → "2.5%". */
function percent(permille: number): string {
  return `${permille / 10}%`;
}

/** `choice` moved into the configured bounds, saying so when it moved. */
function clamp(choice: IntervalChoice, bounds: AdaptiveBounds): IntervalChoice {
  if (choice.intervalMs < bounds.minIntervalMs) {
    return { intervalMs: bounds.minIntervalMs, reason: `${choice.reason}; clamped to min ${bounds.minIntervalMs} ms` };
  }
  if (bounds.maxIntervalMs > 0 && choice.intervalMs > bounds.maxIntervalMs) {
    return { intervalMs: bounds.maxIntervalMs, reason: `${choice.reason}; clamped to max ${bounds.maxIntervalMs} ms` };
  }
  return choice;
}

/**
 * The interval for checkpoints that take `durationMs`: the base interval
 * while it lies between the budget's lower bound and the replay target's
 * upper bound, else the bound it crossed. When the bounds conflict the
 * budget wins, because checkpointing more often than the budget allows
 * would starve the job, while a longer replay only delays a recovery.
 */
function adapt(baseIntervalMs: number, bounds: AdaptiveBounds, durationMs: number): IntervalChoice {
  const atLeastMs = Math.ceil((durationMs * 1000) / bounds.budgetPermille);
  const atMostMs = bounds.replayTargetMs > 0 ? Math.max(0, bounds.replayTargetMs - durationMs) : Infinity;
  const taking = `checkpoints take ${durationMs} ms`;
  const budget = `${percent(bounds.budgetPermille)} budget needs at least ${atLeastMs} ms`;
  const replay = `replay target ${bounds.replayTargetMs} ms allows at most ${atMostMs} ms`;
  if (atLeastMs > atMostMs) {
    const reason = `${taking}; ${budget}, but ${replay}: the budget wins, as checkpointing more often would starve the job`;
    return { intervalMs: atLeastMs, reason };
  }
  if (baseIntervalMs < atLeastMs) return { intervalMs: atLeastMs, reason: `${taking}; ${budget}` };
  if (baseIntervalMs > atMostMs) return { intervalMs: atMostMs, reason: `${taking}; ${replay}` };
  const within = Number.isFinite(atMostMs) ? `${budget} and ${replay}` : budget;
  return { intervalMs: baseIntervalMs, reason: `${taking}; base interval ${baseIntervalMs} ms kept: ${within}` };
}

/**
 * The interval to use: the policy's own when `bounds` is null, else the base
 * interval adapted to checkpoints taking `durationMs` (the base interval
 * itself while no checkpoint completed), within the configured bounds.
 */
export function chooseInterval(
  baseIntervalMs: number,
  bounds: AdaptiveBounds | null,
  durationMs: number | undefined,
): IntervalChoice {
  if (bounds === null) {
    const reason = baseIntervalMs === 0 ? 'periodic checkpoints off by policy' : 'fixed by policy';
    return { intervalMs: baseIntervalMs, reason };
  }
  if (durationMs === undefined) {
    const reason = `no checkpoint completed yet: base interval ${baseIntervalMs} ms`;
    return clamp({ intervalMs: baseIntervalMs, reason }, bounds);
  }
  return clamp(adapt(baseIntervalMs, bounds, durationMs), bounds);
}

/** A job's interval, following the durations of its recent completed checkpoints. */
export class AdaptiveInterval {
  private readonly baseIntervalMs: number;
  private readonly bounds: AdaptiveBounds | null;
  /** Durations of the most recent completed checkpoints, oldest first. */
  private readonly durationsMs: number[] = [];
  private choice: IntervalChoice;

  constructor(baseIntervalMs: number, bounds: AdaptiveBounds | null) {
    this.baseIntervalMs = baseIntervalMs;
    this.bounds = bounds;
    this.choice = chooseInterval(baseIntervalMs, bounds, undefined);
  }

  /** The interval in force and why. */
  get current(): IntervalChoice {
    return this.choice;
  }

  /**
   * A checkpoint completed `durationMs` after its trigger. A negative
   * duration (the clock stepped back) counts as 0. A fixed interval ignores it.
   */
  completed(durationMs: number): void {
    if (this.bounds === null) return;
    this.durationsMs.push(Math.max(0, Math.round(durationMs)));
    if (this.durationsMs.length > DURATION_WINDOW) this.durationsMs.shift();
    const figureMs = Math.round(median(this.durationsMs));
    this.choice = chooseInterval(this.baseIntervalMs, this.bounds, figureMs);
  }
}
