// Latency histograms (HdrHistogram): values recorded in microseconds, read back in milliseconds.
import * as hdr from "hdr-histogram-js";

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Up to 10 minutes, which is more than any deadline the load generator allows. */
const HIGHEST_US = 600_000_000;

/**
 * A histogram of latencies. 3 significant digits (0.1% error) for the per-RPC totals; the per-second
 * ones use 2 (1%), since a run may keep hundreds of them and only their p50/p99 are shown.
 */
export function latencyHistogram(significantDigits: 2 | 3 = 3): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: significantDigits });
}

/** Records `ms` (clamped to 1 µs..10 min, so a clock oddity never throws inside a run). */
export function recordMs(h: hdr.Histogram, ms: number): void {
  h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))));
}

/** Milliseconds rounded to the microsecond. */
const ms = (us: number) => Math.round(us) / 1000;

/** p50/p90/p99/max/mean in milliseconds; all zero for an empty histogram. */
export function summarize(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  // HdrHistogram answers a percentile with the top of its bucket, which can lie above the largest value
  // recorded; no percentile is above the maximum.
  const at = (p: number) => ms(Math.min(h.getValueAtPercentile(p), h.maxValue));
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** A new histogram holding the values of all of `hs` (e.g. every RPC of a run, or several runs). */
export function merged(hs: hdr.Histogram[]): hdr.Histogram {
  const out = latencyHistogram();
  for (const h of hs) out.add(h);
  return out;
}
