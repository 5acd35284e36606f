/**
 * Percentiles of repeated measurements, and rounding for the summary.
 */

/** The spread of a set of measurements. */
export interface Spread {
  count: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

/** The `q`-quantile (0 to 1) of ascending `sorted` by nearest rank; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** p50, p99, min and max of `samples` (in any order). */
export function spread(samples: readonly number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

/** The median of `samples`. */
export function median(samples: readonly number[]): number {
  return spread(samples).p50;
}

/** `value` to `digits` significant digits, for figures a reader compares by eye. */
export function significant(value: number, digits = 4): number {
  if (!Number.isFinite(value) || value === 0) return value;
  return Number(value.toPrecision(digits));
}
