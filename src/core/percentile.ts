/** Percentiles of small samples (latency windows, benchmark runs). */

/**
 * The `p`-th percentile (0-100) of `values` by the nearest-rank rule (the smallest value with at
 * least `p` % of the values at or below it); `undefined` for no values.
 */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
