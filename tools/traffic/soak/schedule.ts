// The soak's fault schedule: a seeded random sequence of the faults the local stack can inject, some of them
// overlapping. Pure (no clock, no processes): the same seed and duration always give the same schedule, so a
// failing soak can be run again exactly.

import { UNITS, type UnitName } from "../../stack/launcher.js";
import { seededRng } from "../load/mix.js";

export const SOAK_FAULT_KINDS = ["kill", "sigterm", "db-stop", "payment-slow", "payment-fail"] as const;
export type SoakFaultKind = (typeof SOAK_FAULT_KINDS)[number];

export interface PlannedFault {
  /** 1, 2, ... in schedule order. */
  id: number;
  kind: SoakFaultKind;
  /** kill, sigterm: the process; payment-*: payment. */
  unit?: UnitName;
  /** When it starts, ms since the load started. */
  atMs: number;
  /** kill: down this long before the restart; db-stop: stopped this long; payment-*: knob on this long; sigterm: 0. */
  durationMs: number;
  /** payment-slow: the added latency; payment-fail: the share of calls answered UNAVAILABLE. */
  delayMs?: number;
  errorPercent?: number;
}

export interface ScheduleOptions {
  seed: number;
  durationMs: number;
  /** No fault starts before this (the shoppers' first calls), default 3 s. */
  quietStartMs?: number;
  /** Every fault has ended this long before the load ends (recovery is seen in the run), default 12 s. */
  quietEndMs?: number;
  /** Gap between fault starts, drawn uniformly in [min, max] ms; default 2–10 s (faults last 0–10 s: some overlap). */
  gapMs?: [number, number];
}

/** How often each kind is drawn. */
const WEIGHTS: Record<SoakFaultKind, number> = { kill: 4, sigterm: 3, "db-stop": 2, "payment-slow": 2, "payment-fail": 2 };

/**
 * What a fault occupies: two faults on one resource never overlap (a process already down cannot be killed,
 * the knobs are one setting), faults on different ones may. A process stays busy a while after its restart
 * (start-up takes seconds on a loaded machine) so the next fault on it finds it up.
 */
const RESTART_MARGIN_MS = 8000;
function resourceOf(f: Pick<PlannedFault, "kind" | "unit">): string {
  return f.kind === "db-stop" ? "database" : (f.unit as string);
}

export function soakSchedule(o: ScheduleOptions): PlannedFault[] {
  const quietStart = o.quietStartMs ?? 3000;
  const quietEnd = o.quietEndMs ?? 12_000;
  const [gapMin, gapMax] = o.gapMs ?? [2000, 10_000];
  if (!Number.isInteger(o.seed)) throw new RangeError(`seed must be a whole number, got ${o.seed}`);
  if (!(gapMin > 0 && gapMax >= gapMin)) throw new RangeError(`gapMs must be [min, max] with 0 < min <= max, got [${gapMin}, ${gapMax}]`);
  const rng = seededRng(o.seed);
  const kinds = SOAK_FAULT_KINDS.flatMap((k) => Array<SoakFaultKind>(WEIGHTS[k]).fill(k));
  const busyUntil = new Map<string, number>();
  const out: PlannedFault[] = [];
  for (let at = quietStart + rng.int(0, gapMin); ; at += rng.int(gapMin, gapMax)) {
    // Every draw is made whatever happens to it, so the sequence of random numbers never depends on skips.
    const kind = rng.pick(kinds);
    const unit = kind === "payment-slow" || kind === "payment-fail" ? "payment" : rng.pick(UNITS);
    const durationMs = {
      kill: rng.int(1, 6) * 1000,
      sigterm: 0,
      "db-stop": rng.int(3, 10) * 1000,
      "payment-slow": rng.int(4, 10) * 1000,
      "payment-fail": rng.int(3, 8) * 1000,
    }[kind];
    const knob = rng.int(0, 100);
    if (at + durationMs > o.durationMs - quietEnd) break;
    const f: PlannedFault = { id: out.length + 1, kind, atMs: at, durationMs };
    if (kind !== "db-stop") f.unit = unit;
    // Slow: past the shopper's 3 s deadline for part of the time; failing: between a few and all Charges.
    if (kind === "payment-slow") f.delayMs = 2000 + knob * 40;
    if (kind === "payment-fail") f.errorPercent = Math.max(10, knob);
    const r = resourceOf(f);
    if ((busyUntil.get(r) ?? 0) > at) continue;
    busyUntil.set(r, at + durationMs + (kind === "kill" || kind === "sigterm" || kind === "db-stop" ? RESTART_MARGIN_MS : 0));
    out.push(f);
  }
  return out;
}

/** How many faults of the schedule run at the same time as another one. */
export function overlapping(schedule: PlannedFault[]): number {
  const end = (f: PlannedFault) => f.atMs + Math.max(f.durationMs, 1000);
  return schedule.filter((f) => schedule.some((g) => g !== f && g.atMs < end(f) && f.atMs < end(g))).length;
}

/** One line per fault, for logs and the report. */
export function describeFault(f: PlannedFault): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s`;
  switch (f.kind) {
    case "kill":
      return `kill -9 ${f.unit}, restart after ${s(f.durationMs)}`;
    case "sigterm":
      return `SIGTERM ${f.unit}, new process`;
    case "db-stop":
      return `database stopped for ${s(f.durationMs)}`;
    case "payment-slow":
      return `payment delays every call ${f.delayMs} ms for ${s(f.durationMs)}`;
    case "payment-fail":
      return `payment answers ${f.errorPercent}% of calls UNAVAILABLE for ${s(f.durationMs)}`;
  }
}
