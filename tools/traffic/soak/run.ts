// The seeded soak (issue 12 item 8): steady shopper load on a local stack (every service a real process, the
// embedded FerretDB) while the seeded schedule of tools/traffic/soak/schedule.ts injects its faults, overlapping at
// times; afterwards every invariant over the whole data set, and per fault how long until things were back.
import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { waitForHealth } from "../../stack/health-wait.js";
import { type Stack, startStack, UNITS } from "../../stack/launcher.js";
import { checkDataSet, type InvariantReport } from "../data-set.js";
import { runLoad } from "../load/index.js";
import type { SecondStats } from "../load/recorder.js";
import { describeFault, overlapping, type PlannedFault, soakSchedule } from "./schedule.js";

export interface SoakOptions {
  seed: number;
  durationMs: number;
  /** Shopper arrivals per second; default 8. */
  rate?: number;
  /** Use this stack (fresh data, started with a short recovery clock) instead of starting one. */
  stack?: Stack;
  progress?: boolean;
  /** Called with each fault as it starts and ends (the CLI prints it). */
  log?: (line: string) => void;
}

export interface FaultOutcome extends PlannedFault {
  what: string;
  /** When it really started and ended (restart begun, database started, knob off), ms since the load started. */
  startedMs: number;
  endedMs: number;
  /** From the end to every service answering SERVING on its health port again. */
  servingAfterMs: number | null;
  /** From the end to the first second of the load with at least 90% of its calls OK. */
  clientOkAfterMs: number | null;
  /** What went wrong driving it (a restart that did not come up...), empty when nothing did. */
  problems: string[];
}

export interface SoakReport {
  seed: number;
  durationMs: number;
  rate: number;
  startedAt: string;
  faults: FaultOutcome[];
  overlapping: number;
  sent: number;
  codes: Record<string, number>;
  placed: { answered: number; ok: number; confirmed: number; failed: number; pending: number };
  invariants: InvariantReport;
  /** The three headline figures, read off the invariants. */
  lost: number;
  duplicateCharges: number;
  stuck: number;
  worstServingAfterMs: number | null;
  worstClientOkAfterMs: number | null;
  timeline: SecondStats[];
}

/** Orders' recovery and payment's reconcile on a short clock, as in the fault experiments. */
export const SOAK_RECOVERY = { intervalMs: 500, afterMs: 4000 };
const MIX = { browse: 2, getProduct: 3, login: 1, placeOrder: 4 };

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const rate = o.rate ?? 8;
  const schedule = soakSchedule({ seed: o.seed, durationMs: o.durationMs });
  const log = o.log ?? (() => undefined);
  const stack = o.stack ?? (await startStack({ logLevel: "warn", recovery: SOAK_RECOVERY }));
  try {
    let t0 = 0;
    let driving: Promise<FaultOutcome[]> | undefined;
    const abort = new AbortController();
    // Every planned fault waits on this one signal (dozens in a long soak): not a leak.
    setMaxListeners(0, abort.signal);
    let run: Awaited<ReturnType<typeof runLoad>>;
    try {
      run = await runLoad({
        targets: {
          identity: stack.endpoints.identity.grpc,
          catalog: stack.endpoints["catalog-v1"].grpc,
          orders: stack.endpoints.orders.grpc,
          payment: stack.endpoints.payment.grpc,
        },
        rate,
        durationMs: o.durationMs,
        mix: MIX,
        deadlineMs: 3000,
        seed: o.seed,
        progress: o.progress,
        // The fault clock starts with the schedule's second 0 (as tools/traffic/experiment does), not with the shoppers' setup.
        onSecond: (sec) => {
          if (sec.t !== 0 || driving) return;
          t0 = Date.now() - sec.p99Ms - 500;
          driving = Promise.all(schedule.map((f) => drive(stack, f, t0, abort.signal, log)));
          driving.catch(() => undefined);
        },
      });
    } finally {
      abort.abort();
    }
    if (!driving) throw new Error("the load never reported its first second, so no fault was injected");
    const shift = t0 - Date.parse(run.startedAt);
    const faults = (await driving).map((f) => {
      const g = { ...f, startedMs: f.startedMs + shift, endedMs: f.endedMs + shift };
      return { ...g, clientOkAfterMs: clientOkAfter(run.timeline, g.endedMs) };
    });
    const accepted = run.placedOrders.filter((p) => p.code === "ok").map((p) => p.orderId);
    const invariants = await checkDataSet(stack.mongoUri, { settleTimeoutMs: SOAK_RECOVERY.afterMs + 120_000, accepted });
    const failedCount = (name: string) => invariants.results.find((r) => r.name === name)?.violations ?? 0;
    const codes: Record<string, number> = {};
    for (const s of Object.values(run.byOp)) for (const [c, n] of Object.entries(s?.codes ?? {})) codes[c] = (codes[c] ?? 0) + n;
    const okPlaced = run.placedOrders.filter((p) => p.code === "ok");
    const worst = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : Math.max(0, ...(xs as number[])));
    return {
      seed: o.seed,
      durationMs: o.durationMs,
      rate,
      startedAt: run.startedAt,
      faults,
      overlapping: overlapping(schedule),
      sent: run.sent,
      codes,
      placed: {
        answered: run.placedOrders.length,
        ok: okPlaced.length,
        confirmed: okPlaced.filter((p) => p.status === "CONFIRMED").length,
        failed: okPlaced.filter((p) => p.status === "FAILED").length,
        pending: okPlaced.filter((p) => p.status === "PENDING").length,
      },
      invariants,
      lost: failedCount("accepted-orders-exist"),
      duplicateCharges: failedCount("confirmed-charged-once") + failedCount("no-orphan-charges"),
      stuck: failedCount("no-pending"),
      worstServingAfterMs: worst(faults.map((f) => f.servingAfterMs)),
      worstClientOkAfterMs: worst(faults.map((f) => f.clientOkAfterMs)),
      timeline: run.timeline,
    };
  } finally {
    if (!o.stack) await stack.stop();
  }
}

/** From `endMs` to the start of the first second after it with at least 90% OK (null: none before the run ended). */
export function clientOkAfter(timeline: SecondStats[], endMs: number): number | null {
  const s = timeline.find((x) => x.t * 1000 >= endMs - 999 && x.ok + x.errors > 0 && x.ok / (x.ok + x.errors) >= 0.9);
  return s ? Math.max(0, s.t * 1000 - endMs) : null;
}

/** Starts `u` until it comes up: a start while the database is stopped (another fault) waits for it or fails. */
async function startUntilUp(stack: Stack, u: (typeof UNITS)[number], problems: string[]): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await stack.start(u);
      return;
    } catch (err) {
      problems.push(`start ${u} (try ${i + 1}): ${(err as Error).message.split("\n")[0]}`);
      if (i >= 4) throw err;
    }
  }
}

/** Runs one planned fault at its time on the stack; always puts back what it took away. */
async function drive(stack: Stack, f: PlannedFault, t0: number, signal: AbortSignal, log: (line: string) => void): Promise<FaultOutcome> {
  const now = () => Date.now() - t0;
  const problems: string[] = [];
  const what = describeFault(f);
  const wait = f.atMs - now();
  if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
  const startedMs = now();
  if (signal.aborted)
    return { ...f, what, startedMs, endedMs: startedMs, servingAfterMs: null, clientOkAfterMs: null, problems: ["not started: the load ended first"] };
  log(`${(startedMs / 1000).toFixed(1)} s  #${f.id} ${what}`);
  const hold = async () => {
    const left = startedMs + f.durationMs - now();
    if (left > 0) await sleep(left);
  };
  let endedMs: number;
  try {
    switch (f.kind) {
      case "kill":
        await stack.kill(f.unit as (typeof UNITS)[number], "SIGKILL");
        await hold();
        endedMs = now();
        await startUntilUp(stack, f.unit as (typeof UNITS)[number], problems);
        break;
      case "sigterm":
        await stack.kill(f.unit as (typeof UNITS)[number], "SIGTERM");
        endedMs = now();
        await startUntilUp(stack, f.unit as (typeof UNITS)[number], problems);
        break;
      case "db-stop":
        await stack.stopDb();
        await hold();
        endedMs = now();
        await stack.startDb();
        break;
      case "payment-slow":
      case "payment-fail":
        await stack.setFaults("payment", f.kind === "payment-slow" ? { delayMs: f.delayMs } : { errorPercent: f.errorPercent });
        await hold();
        endedMs = now();
        await stack.setFaults("payment", {});
        break;
    }
  } catch (err) {
    endedMs = now();
    problems.push((err as Error).message.split("\n")[0]);
  }
  // Back = every service SERVING on its health port (their readiness includes the database).
  const back = await Promise.all(
    UNITS.map((u) =>
      waitForHealth(stack.endpoints[u].local ?? stack.endpoints[u].grpc, { timeoutMs: 120_000 }).then(
        () => true,
        (err: Error) => {
          problems.push(`${u} not SERVING: ${err.message}`);
          return false;
        },
      ),
    ),
  );
  const servingAfterMs = back.every(Boolean) ? now() - endedMs : null;
  log(`${(now() / 1000).toFixed(1)} s  #${f.id} over, every service SERVING ${servingAfterMs === null ? "NOT reached" : `${servingAfterMs} ms after its end`}`);
  return { ...f, what, startedMs, endedMs, servingAfterMs, clientOkAfterMs: null, problems };
}
