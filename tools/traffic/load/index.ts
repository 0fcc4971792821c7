// meshmart's load generator: open-loop shopper traffic against a local stack, a port-forward or an
// ingress, with per-RPC codes and latency histograms, a per-second timeline and the orders it placed.
//
//   const report = await runLoad({ targets, rate: 50, durationMs: 10_000, mix: { placeOrder: 1, getProduct: 5 } });
//
// The CLI is tools/traffic/load/cli.ts (npm run load).
import type { LatencySummary } from "./histogram.js";
import { DEFAULT_MIX, type Op, opPicker, seededRng } from "./mix.js";
import { progressLine } from "./progress.js";
import { type OpStats, Recorder, type SecondStats } from "./recorder.js";
import { checkBounds, DEFAULT_MAX_IN_FLIGHT, runOpenLoop } from "./schedule.js";
import { type LoadTargets, openShop, type PlacedOrder } from "./shopper.js";

export { DEFAULT_MIX, OPS, type Op, parseMix } from "./mix.js";
export type { OpStats, SecondStats } from "./recorder.js";
export { DROPPED, MAX_DURATION_MS, MAX_RATE } from "./schedule.js";
export { APPROVED_CARD, LOAD_PASSWORD, type LoadTargets, type PlacedOrder } from "./shopper.js";

export interface LoadOptions {
  targets: LoadTargets;
  /** Arrivals per second, open loop (0 < rate <= MAX_RATE). */
  rate: number;
  /** How long arrivals keep coming (0 < durationMs <= MAX_DURATION_MS); calls in flight then finish. */
  durationMs: number;
  /** Relative weights; ops left out are not sent. Default DEFAULT_MIX. */
  mix?: Partial<Record<Op, number>>;
  /** Deadline of every call; default 5000 ms. */
  deadlineMs?: number;
  /** Shoppers registered and logged in before the start; default 10. */
  users?: number;
  /** Seeds the op and parameter choices; default 1. */
  seed?: number;
  /** A progress line on stderr (only drawn on a TTY). */
  progress?: boolean;
  /** Stops new arrivals; calls in flight finish and are reported. */
  signal?: AbortSignal;
  /** Each second of the schedule, once every call due in it has been answered or dropped. */
  onSecond?: (s: SecondStats) => void;
  /** Arrivals beyond this many calls in flight are dropped (counted as code "dropped"); default 1000. */
  maxInFlight?: number;
}

export interface LoadReport {
  startedAt: string;
  /** The scheduled duration. */
  durationMs: number;
  /** From the first arrival to the last answer. */
  elapsedMs: number;
  rate: number;
  seed: number;
  mix: Partial<Record<Op, number>>;
  /** Arrivals: completed + dropped, and the sum of every op's codes. */
  sent: number;
  completed: number;
  /** Arrivals not sent because maxInFlight calls were running (code "dropped" in byOp and the timeline). */
  dropped: number;
  maxInFlight: number;
  peakInFlight: number;
  /** How late the generator itself sent arrivals (included in the latencies); see OpenLoopResult. */
  sendLagMs: LatencySummary;
  byOp: Partial<Record<Op, OpStats>>;
  timeline: SecondStats[];
  placedOrders: PlacedOrder[];
  setup: { users: number; products: number; runId: string };
}

/** Registers the shoppers, runs the schedule, waits for the last answers and reports. */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  checkBounds({ rate: opts.rate, durationMs: opts.durationMs, maxInFlight });
  const deadlineMs = opts.deadlineMs ?? 5000;
  if (!(deadlineMs > 0 && deadlineMs <= 60_000)) throw new RangeError(`deadlineMs must be > 0 and <= 60000, got ${deadlineMs}`);
  const users = opts.users ?? 10;
  if (!(Number.isInteger(users) && users >= 1 && users <= 1000)) throw new RangeError(`users must be an integer from 1 to 1000, got ${users}`);
  const seed = opts.seed ?? 1;
  const mix = opts.mix ?? DEFAULT_MIX;
  const rng = seededRng(seed);
  const nextOp = opPicker(mix, rng);

  const shop = await openShop(opts.targets, { users, deadlineMs, rng });
  try {
    const progress = opts.progress ? progressLine(opts.durationMs) : undefined;
    let last: SecondStats | undefined;
    const totals = { sent: 0, ok: 0, errors: 0, settled: 0 };
    const recorder = new Recorder<Op>(opts.durationMs, (s) => {
      last = s;
      opts.onSecond?.(s);
    });
    const startedAt = new Date().toISOString();
    const result = await runOpenLoop<Op>({
      rate: opts.rate,
      durationMs: opts.durationMs,
      maxInFlight,
      signal: opts.signal,
      next: () => nextOp(),
      send: (op) => shop.ops[op](),
      onArrival: (op, _i, due) => {
        totals.sent++;
        recorder.arrival(op, due);
      },
      onOutcome: ({ what, dueMs, code, latencyMs }) => {
        totals.settled++;
        if (code === "ok") totals.ok++;
        else totals.errors++;
        recorder.outcome(what, dueMs, code, latencyMs);
      },
      onProgress: (ms) => {
        recorder.scheduledThrough(ms);
        progress?.update(ms, { ...totals, inFlight: totals.sent - totals.settled, last });
      },
    });
    recorder.scheduleDone();
    progress?.done();
    return {
      startedAt,
      durationMs: opts.durationMs,
      elapsedMs: Math.round(result.elapsedMs),
      rate: opts.rate,
      seed,
      mix,
      sent: result.sent,
      completed: result.completed,
      dropped: result.dropped,
      maxInFlight,
      peakInFlight: result.peakInFlight,
      sendLagMs: result.sendLagMs,
      byOp: recorder.byOp(),
      timeline: recorder.timeline(),
      placedOrders: shop.placedOrders,
      setup: shop.setup,
    };
  } finally {
    shop.close();
  }
}
