// Closed loop: `concurrency` callers, each calling again as soon as its last call returns. Right for
// throughput at a fixed concurrency (the echo and the mode comparison); open loop (tools/traffic/load) is for
// latency at a given arrival rate.
import { latencyHistogram, recordMs, summarize } from "../load/histogram.js";

export interface Figures {
  calls: number;
  errors: number;
  rps: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  maxms: number;
  meanms: number;
  /** The first failure, to say why calls failed. */
  firstError?: string;
}

/** Runs `fn` back to back from `concurrency` callers for `ms`; a call that throws counts as an error. */
export async function closedLoop(fn: (i: number) => Promise<unknown>, o: { concurrency: number; ms: number }): Promise<Figures> {
  let firstError: string | undefined;
  const h = latencyHistogram();
  let calls = 0;
  let errors = 0;
  const started = performance.now();
  const until = started + o.ms;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await fn(calls);
        } catch (err) {
          errors++;
          firstError ??= String(err);
        }
        recordMs(h, performance.now() - t);
        calls++;
      }
    }),
  );
  const s = summarize(h);
  const elapsed = (performance.now() - started) / 1000;
  return { calls, errors, rps: Math.round(calls / elapsed), p50ms: s.p50, p90ms: s.p90, p99ms: s.p99, maxms: s.max, meanms: s.mean, firstError };
}
