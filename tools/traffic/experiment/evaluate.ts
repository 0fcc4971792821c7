// Checks a run against its hypothesis: success rates (whole run, per op, or in a window around the fault),
// latency percentiles, allowed and expected status codes, time to recover after the fault.
import type { LoadReport, OpStats, SecondStats } from "../load/index.js";
import type { Expectation, Hypothesis, Window } from "./hypothesis.js";

/** One second of the load generator's timeline. */
export type Second = SecondStats;
/** The parts of the load generator's report (tools/traffic/load, LoadReport) the runner reads. */
export type RunStats = Pick<LoadReport, "durationMs" | "rate" | "sent" | "completed" | "byOp" | "timeline"> & {
  placedOrders: { orderId: string; idempotencyKey: string; code: string; status?: string }[];
};

/** When the fault really began and ended, in ms since the load started (recorded by the driver, not planned). */
export interface FaultTimes {
  startMs: number;
  endMs: number;
  /** The faulted part answered healthy again (local: restarted process SERVING). */
  restoredMs?: number;
}

export interface CheckResult {
  check: string;
  ok: boolean;
  expected: string;
  actual: string;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Seconds of the timeline in a window. Second t covers [t, t+1) s of the run. */
export function secondsIn(timeline: Second[], window: Window, fault: FaultTimes): Second[] {
  const start = fault.startMs / 1000;
  const end = fault.endMs / 1000;
  return timeline.filter((s) => {
    if (window === "whole") return true;
    if (window === "before") return s.t + 1 <= start;
    if (window === "during") return s.t + 1 > start && s.t < end;
    return s.t >= end;
  });
}

/** ok / (ok + errors); NaN when nothing completed. */
export function successRate(seconds: Second[]): number {
  const ok = seconds.reduce((n, s) => n + s.ok, 0);
  const done = seconds.reduce((n, s) => n + s.ok + s.errors, 0);
  return done === 0 ? Number.NaN : ok / done;
}

/**
 * Time to recover: from the fault's end to the start of the first second from which every later second's
 * success rate is at least `threshold`. Undefined when the run ended before that.
 */
export function recoveryMs(timeline: Second[], fault: FaultTimes, threshold = 0.9): number | undefined {
  const after = timeline.filter((s) => s.t + 1 > fault.endMs / 1000);
  let from: number | undefined;
  for (const s of after) {
    const done = s.ok + s.errors;
    const good = done === 0 || s.ok / done >= threshold;
    if (!good) from = undefined;
    else if (from === undefined) from = s.t;
  }
  if (from === undefined) return undefined;
  return Math.max(0, Math.round(from * 1000 - fault.endMs));
}

export function evaluate(h: Hypothesis, run: RunStats, fault: FaultTimes): CheckResult[] {
  return h.expect.map((e) => evaluateOne(e, run, fault));
}

function evaluateOne(e: Expectation, run: RunStats, fault: FaultTimes): CheckResult {
  if ("successRate" in e) {
    const { op, window = "whole", min, max } = e.successRate;
    let rate: number;
    let label: string;
    if (op) {
      const s = run.byOp[op];
      rate = s && s.count > 0 ? (s.codes.ok ?? 0) / s.count : Number.NaN;
      label = `success rate of ${op} (whole run)`;
    } else {
      rate = successRate(secondsIn(run.timeline, window, fault));
      label = `success rate, all calls, ${window === "whole" ? "whole run" : `${window} the fault`}`;
    }
    const bounds = [min !== undefined ? `≥ ${pct(min)}` : "", max !== undefined ? `≤ ${pct(max)}` : ""].filter(Boolean).join(" and ");
    const ok = !Number.isNaN(rate) && (min === undefined || rate >= min) && (max === undefined || rate <= max);
    return { check: label, ok, expected: bounds || "(recorded)", actual: Number.isNaN(rate) ? "no calls completed" : pct(rate) };
  }
  if ("latency" in e) {
    const { op, percentile, maxMs } = e.latency;
    const v = run.byOp[op]?.latencyMs[percentile];
    return {
      check: `${op} ${percentile} latency`,
      ok: v !== undefined && v <= maxMs,
      expected: `≤ ${maxMs} ms`,
      actual: v === undefined ? "no calls" : `${v.toFixed(1)} ms`,
    };
  }
  if ("codes" in e) {
    const { op, allowed, expected } = e.codes;
    const seen: Record<string, number> = {};
    for (const [name, stats] of Object.entries(run.byOp)) {
      if (op && name !== op) continue;
      for (const [c, n] of Object.entries(stats?.codes ?? {})) seen[c] = (seen[c] ?? 0) + n;
    }
    const unexpected = allowed ? Object.keys(seen).filter((c) => !allowed.includes(c) && seen[c] > 0) : [];
    const missing = (expected ?? []).filter((c) => !seen[c]);
    const want = [allowed ? `only ${allowed.join(", ")}` : "", expected ? `some ${expected.join(", ")}` : ""].filter(Boolean).join("; ");
    const actual = Object.entries(seen)
      .sort((a, b) => b[1] - a[1])
      .map(([c, n]) => `${c} ${n}`)
      .join(", ");
    const why = [unexpected.length ? `unexpected: ${unexpected.join(", ")}` : "", missing.length ? `missing: ${missing.join(", ")}` : ""]
      .filter(Boolean)
      .join("; ");
    return {
      check: `status codes${op ? ` of ${op}` : ""}`,
      ok: unexpected.length === 0 && missing.length === 0,
      expected: want,
      actual: why ? `${actual} (${why})` : actual || "none",
    };
  }
  const { maxMs, threshold = 0.9 } = e.recovery;
  const r = recoveryMs(run.timeline, fault, threshold);
  return {
    check: `time to recover (every later second ≥ ${pct(threshold)} ok)`,
    ok: r !== undefined && r <= maxMs,
    expected: `≤ ${maxMs} ms after the fault ended`,
    actual: r === undefined ? "not recovered before the run ended" : `${r} ms`,
  };
}

/** Arithmetic the report must satisfy: per-second, per-op and per-code counts add up to the totals (dropped arrivals count as sent). */
export function consistency(run: RunStats): CheckResult[] {
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const ops = Object.values(run.byOp).filter((s): s is OpStats => s !== undefined);
  const dropped = sum(ops.map((s) => s.codes.dropped ?? 0));
  const row = (check: string, a: number | boolean, b: number | boolean): CheckResult => ({ check, ok: a === b, expected: String(b), actual: String(a) });
  const placeOrder = run.byOp.placeOrder;
  return [
    row("sum of arrivals per second = arrivals", sum(run.timeline.map((s) => s.sent)), run.sent),
    row("sum of ok + errors per second = arrivals", sum(run.timeline.map((s) => s.ok + s.errors)), run.sent),
    row("sum of calls per op = arrivals", sum(ops.map((s) => s.count)), run.sent),
    row("sum of status codes per op = arrivals", sum(ops.map((s) => sum(Object.values(s.codes)))), run.sent),
    row("answered + dropped = arrivals", run.completed + dropped, run.sent),
    row(
      "per second: codes add up to ok + errors, ok = code ok",
      run.timeline.every((s) => sum(Object.values(s.codes)) === s.ok + s.errors && (s.codes.ok ?? 0) === s.ok),
      true,
    ),
    row("placed orders listed = PlaceOrder calls sent", run.placedOrders.length, (placeOrder?.count ?? 0) - (placeOrder?.codes.dropped ?? 0)),
  ];
}

/** What the clients were told about their orders: PlaceOrder answers by code, and the order state of the ok ones. */
export function orderOutcomes(run: RunStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of run.placedOrders) {
    const k = o.code === "ok" ? `ok ${o.status ?? "?"}` : o.code;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
