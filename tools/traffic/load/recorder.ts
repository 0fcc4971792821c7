// Counts and latencies of a run: per RPC (codes and a histogram) and per second of the schedule (the
// timeline). Every arrival belongs to the second it was due in, so the timeline adds up to the totals;
// a second is reported (onSecond) once everything due in it has been answered or dropped.
import type { Histogram } from "hdr-histogram-js";
import { type LatencySummary, latencyHistogram, recordMs, summarize } from "./histogram.js";
import { DROPPED } from "./schedule.js";

export interface SecondStats {
  /** Seconds since the start: this second covers arrivals due in [t, t + 1). */
  t: number;
  sent: number;
  ok: number;
  /** sent - ok: failed calls and dropped arrivals. */
  errors: number;
  codes: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
}

export interface OpStats {
  /** Arrivals of this RPC, sent or dropped: the sum of `codes`. */
  count: number;
  codes: Record<string, number>;
  /** Over the answered calls (dropped arrivals have no latency). */
  latencyMs: LatencySummary;
}

interface Second {
  sent: number;
  outstanding: number;
  codes: Record<string, number>;
  /** Dropped once the second is reported: only its p50/p99 are kept. */
  histogram?: Histogram;
}

const bump = (codes: Record<string, number>, code: string) => {
  codes[code] = (codes[code] ?? 0) + 1;
};

export class Recorder<K extends string> {
  private readonly ops = new Map<K, { count: number; codes: Record<string, number>; histogram: Histogram }>();
  private readonly seconds: Second[];
  private readonly reported: SecondStats[] = [];
  /** Seconds before this one get no more arrivals. */
  private closed = 0;

  constructor(
    durationMs: number,
    private readonly onSecond?: (s: SecondStats) => void,
  ) {
    this.seconds = Array.from({ length: Math.max(1, Math.ceil(durationMs / 1000)) }, () => ({
      sent: 0,
      outstanding: 0,
      codes: {},
      histogram: latencyHistogram(2),
    }));
  }

  private second(dueMs: number): Second {
    return this.seconds[Math.min(this.seconds.length - 1, Math.floor(dueMs / 1000))];
  }

  private op(key: K) {
    let o = this.ops.get(key);
    if (!o) this.ops.set(key, (o = { count: 0, codes: {}, histogram: latencyHistogram(3) }));
    return o;
  }

  arrival(key: K, dueMs: number): void {
    this.op(key).count++;
    const s = this.second(dueMs);
    s.sent++;
    s.outstanding++;
  }

  outcome(key: K, dueMs: number, code: string, latencyMs?: number): void {
    const o = this.op(key);
    bump(o.codes, code);
    const s = this.second(dueMs);
    bump(s.codes, code);
    s.outstanding--;
    if (latencyMs !== undefined && code !== DROPPED) {
      recordMs(o.histogram, latencyMs);
      if (s.histogram) recordMs(s.histogram, latencyMs);
    }
    this.flush();
  }

  /** The schedule has passed `ms`: the seconds before it are complete once their calls are answered. */
  scheduledThrough(ms: number): void {
    this.closed = Math.max(this.closed, Math.min(this.seconds.length, Math.floor(ms / 1000)));
    this.flush();
  }

  /** No more arrivals at all. */
  scheduleDone(): void {
    this.scheduledThrough(Number.POSITIVE_INFINITY);
  }

  private flush() {
    while (this.reported.length < this.closed && this.seconds[this.reported.length].outstanding === 0) {
      const t = this.reported.length;
      const s = this.seconds[t];
      const ok = s.codes.ok ?? 0;
      const lat = summarize(s.histogram ?? latencyHistogram(2));
      const stats: SecondStats = { t, sent: s.sent, ok, errors: s.sent - ok, codes: s.codes, p50Ms: lat.p50, p99Ms: lat.p99 };
      s.histogram = undefined;
      this.reported.push(stats);
      this.onSecond?.(stats);
    }
  }

  /** The per-second figures reported so far (all of them once every call is settled). */
  timeline(): SecondStats[] {
    return this.reported;
  }

  byOp(): Partial<Record<K, OpStats>> {
    const out: Partial<Record<K, OpStats>> = {};
    for (const [key, o] of this.ops) out[key] = { count: o.count, codes: { ...o.codes }, latencyMs: summarize(o.histogram) };
    return out;
  }

  /** The histogram of one RPC (for merging across runs). */
  histogramOf(key: K): Histogram | undefined {
    return this.ops.get(key)?.histogram;
  }
}
