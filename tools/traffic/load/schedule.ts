// The open-loop scheduler: arrivals at a fixed rate, each due at start + i/rate whatever the earlier calls
// are doing, and latency measured from that due time. A slow response therefore delays nothing else and
// shows up in full in the figures (no coordinated omission); a late timer (busy event loop) counts too.
import { setTimeout as sleep } from "node:timers/promises";
import { type LatencySummary, latencyHistogram, recordMs, summarize } from "./histogram.js";

/** Caps, so a typo cannot turn the load generator into a flood or an endless run. */
export const MAX_RATE = 5000;
export const MAX_DURATION_MS = 10 * 60_000;
export const DEFAULT_MAX_IN_FLIGHT = 1000;

/** The code recorded for an arrival that was not sent because `maxInFlight` calls were already running. */
export const DROPPED = "dropped";

/** How many arrivals a run of `durationMs` at `rate` per second has: one every 1/rate s, the first at 0. */
export function arrivalCount(rate: number, durationMs: number): number {
  return Math.floor((rate * durationMs) / 1000 + 1e-9);
}

/** When arrival `i` is due, in ms after the start. */
export function dueMs(i: number, rate: number): number {
  return (i * 1000) / rate;
}

/** Throws a RangeError naming the option unless rate, duration and in-flight cap are in bounds. */
export function checkBounds(o: { rate: number; durationMs: number; maxInFlight?: number }): void {
  if (!(Number.isFinite(o.rate) && o.rate > 0 && o.rate <= MAX_RATE)) throw new RangeError(`rate must be > 0 and <= ${MAX_RATE} per second, got ${o.rate}`);
  if (!(Number.isFinite(o.durationMs) && o.durationMs > 0 && o.durationMs <= MAX_DURATION_MS))
    throw new RangeError(`durationMs must be > 0 and <= ${MAX_DURATION_MS}, got ${o.durationMs}`);
  if (o.maxInFlight !== undefined && !(Number.isInteger(o.maxInFlight) && o.maxInFlight > 0))
    throw new RangeError(`maxInFlight must be a positive integer, got ${o.maxInFlight}`);
}

export interface Outcome<T> {
  what: T;
  index: number;
  /** Due time, ms after the start. */
  dueMs: number;
  /** gRPC code name, or DROPPED. */
  code: string;
  /** From the due time to the answer; undefined when dropped. */
  latencyMs?: number;
}

export interface OpenLoopOptions<T> {
  rate: number;
  durationMs: number;
  maxInFlight?: number;
  signal?: AbortSignal;
  /** Decides what arrival `i` is; called once per arrival, in order (so a seeded PRNG stays reproducible). */
  next: (index: number) => T;
  /** Makes the call; resolves with its code name (never rejects: the caller maps errors to codes). */
  send: (what: T, index: number) => Promise<string>;
  /** Called when an arrival is due (before it is sent or dropped). */
  onArrival?: (what: T, index: number, dueMs: number) => void;
  /** Called once per arrival when it is settled (answered or dropped). */
  onOutcome: (o: Outcome<T>) => void;
  /** Called as the schedule passes each due time: the arrivals before `ms` have all been sent or dropped. */
  onProgress?: (ms: number) => void;
  now?: () => number;
}

export interface OpenLoopResult {
  sent: number;
  completed: number;
  dropped: number;
  /** From the start to the last answer. */
  elapsedMs: number;
  /** Largest number of calls in flight at once. */
  peakInFlight: number;
  /**
   * How late arrivals went out after their due time: the generator's own lag (a busy event loop, timer
   * granularity). Already part of every latency; large values mean the generator, not the target, was short of CPU.
   */
  sendLagMs: LatencySummary;
}

/**
 * Runs the schedule, then waits for the calls still in flight (their deadlines bound that wait).
 * Aborting `signal` stops new arrivals; the ones in flight still finish and are recorded.
 */
export async function runOpenLoop<T>(opts: OpenLoopOptions<T>): Promise<OpenLoopResult> {
  checkBounds(opts);
  const now = opts.now ?? (() => performance.now());
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const total = arrivalCount(opts.rate, opts.durationMs);
  const start = now();
  let inFlight = 0;
  let peakInFlight = 0;
  let completed = 0;
  let dropped = 0;
  let sent = 0;
  const running = new Set<Promise<void>>();
  const lag = latencyHistogram(2);

  const fire = (i: number) => {
    const due = dueMs(i, opts.rate);
    const what = opts.next(i);
    recordMs(lag, now() - (start + due));
    sent++;
    opts.onArrival?.(what, i, due);
    if (inFlight >= maxInFlight) {
      dropped++;
      opts.onOutcome({ what, index: i, dueMs: due, code: DROPPED });
      return;
    }
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    const p = opts.send(what, i).then(
      (code) => code,
      () => "unknown", // send must not reject; if it does anyway, the call is still counted
    );
    const done = p.then((code) => {
      const t = now();
      inFlight--;
      completed++;
      opts.onOutcome({ what, index: i, dueMs: due, code, latencyMs: t - (start + due) });
      running.delete(done);
    });
    running.add(done);
  };

  let i = 0;
  while (i < total && !opts.signal?.aborted) {
    const wait = start + dueMs(i, opts.rate) - now();
    if (wait > 0) await sleep(wait, undefined, { signal: opts.signal }).catch(() => undefined); // an abort ends the wait early
    // Everything due by now goes out at once: after a late wake-up the backlog is sent, not skipped.
    const elapsed = now() - start;
    while (i < total && dueMs(i, opts.rate) <= elapsed && !opts.signal?.aborted) fire(i++);
    opts.onProgress?.(elapsed);
  }
  opts.onProgress?.(Math.max(opts.durationMs, now() - start));
  while (running.size > 0) await Promise.all(running);
  return { sent, completed, dropped, elapsedMs: now() - start, sendLagMs: summarize(lag), peakInFlight };
}
