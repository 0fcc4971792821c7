// Runs one experiment end to end: load (tools/traffic/load) while the fault is on, then the hypothesis checks, the
// invariants over the whole data set, and the report files.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../root.js";
import { localMeshInfo, localSettle } from "../../stack/kube/local.js";
import { type Stack, startStack, UNITS, type UnitName } from "../../stack/launcher.js";
import { readMeshFile } from "../../stack/mesh/config.js";
import { checkDataSet, type InvariantReport } from "../data-set.js";
import { DEFAULT_TARGETS } from "../load/args.js";
import { type LoadOptions, runLoad as realRunLoad } from "../load/index.js";
import { pickTraces } from "../trace/pick.js";
import { readSpans, type SpanRecord } from "../trace/spans.js";
import { auditCharges, clusterPlan, type Settle, withClusterFault } from "./cluster.js";
import { consistency, evaluate, type FaultTimes, orderOutcomes, type RunStats, recoveryMs, secondsIn, successRate } from "./evaluate.js";
import { EXPERIMENTS_DIR, type Hypothesis, loadHypothesis } from "./hypothesis.js";
import { driveLocalFault, type FaultLog } from "./local.js";
import { meshRefusal, withMeshFault } from "./mesh.js";
import { type ExperimentReport, writeReport } from "./report.js";

/** tools/traffic/load's runLoad, as the runner calls it (injectable, so the runner's tests can feed it a run). */
export type RunLoad = (
  opts: Pick<LoadOptions, "targets" | "rate" | "durationMs" | "mix" | "deadlineMs" | "progress" | "seed" | "onSecond">,
) => Promise<RunStats & { startedAt: string }>;

export interface ExperimentOptions {
  name: string;
  /** local: process-level faults; cluster: kubectl; mesh: the Istio YAML through a local istiod (proxyless gRPC). */
  target?: "local" | "cluster" | "mesh";
  rate?: number;
  durationMs?: number;
  /** Where the report files go (default reports/); none are written when false. */
  reportsDir?: string | false;
  progress?: boolean;
  /** local: orders' recovery loop settings for the stack the runner starts. */
  recovery?: { intervalMs: number; afterMs: number };
  /** local, mesh: use this stack instead of starting one (its database must start from the seed for the invariants; for mesh, started with `mesh`). */
  stack?: Stack;
  /** cluster: one address for every service (ingress), else the skaffold port-forwards (50051..50054). */
  address?: string;
  /** cluster: a mongodb:// URI reaching the cluster's database (port-forward), to check the invariants. */
  mongodbUri?: string;
  /** cluster: where the load goes (e.g. xds:/// targets through the local control plane's mesh); overrides `address`. */
  targets?: LoadOptions["targets"];
  /** cluster: waits until each kubectl change is in effect, by observing it (tools/stack/kube/mesh.ts for the local control plane). */
  settle?: Settle;
  /**
   * cluster: a directory of OTLP/JSON-lines span files (an OpenTelemetry collector's file exporter fed by the
   * services' OTEL_EXPORTER_OTLP_ENDPOINT) to draw the report's traces from. Locally the stack's own files are used.
   */
  tracesDir?: string;
  /** Another load function (tests of the cluster path use a fake, named as such). */
  runLoad?: RunLoad;
  /** Overrides the hypothesis's fault timing (tests run shorter). */
  fault?: { startAfterMs: number; durationMs: number };
  /** Project root whose mesh/ the cluster plan applies (tests point it at a scratch copy). */
  root?: string;
  hypothesesDir?: string;
  env?: NodeJS.ProcessEnv;
  seed?: number;
}

export const LOCAL_RECOVERY = { intervalMs: 500, afterMs: 4000 };

/** Scales the planned fault window when --duration changes the run's length (keeps the fault inside it). */
export function scaledFault(h: Hypothesis, durationMs: number): Hypothesis["fault"] {
  if (durationMs === h.load.durationMs) return h.fault;
  const f = durationMs / h.load.durationMs;
  return { ...h.fault, startAfterMs: Math.round(h.fault.startAfterMs * f), durationMs: Math.round(h.fault.durationMs * f) };
}

export async function runExperiment(opts: ExperimentOptions): Promise<{ report: ExperimentReport; files?: ReturnType<typeof writeReport> }> {
  const h = loadHypothesis(opts.name, opts.hypothesesDir);
  const target = opts.target ?? "local";
  if (target === "mesh") {
    const refused = meshRefusal(h, opts.root ? join(opts.root, "mesh", "experiments") : undefined);
    if (refused) throw new Error(refused);
  } else if (!h.targets.includes(target)) throw new Error(`experiment "${h.name}" runs on ${h.targets.join(" and ")}, not ${target}`);
  const durationMs = opts.durationMs ?? h.load.durationMs;
  const rate = opts.rate ?? h.load.rate;
  const timing = opts.fault ? { ...h.fault, ...opts.fault } : scaledFault(h, durationMs);
  if (timing.startAfterMs + timing.durationMs > durationMs)
    throw new Error(`the fault (${timing.startAfterMs} + ${timing.durationMs} ms) does not fit in the run (${durationMs} ms)`);
  const runLoad: RunLoad = opts.runLoad ?? realRunLoad;
  const loadOpts = { rate, durationMs, mix: h.load.mix, deadlineMs: h.load.deadlineMs, progress: opts.progress, seed: opts.seed };

  const loadAvgStart = loadavg()[0];
  let run: RunStats & { startedAt: string };
  let fault: FaultLog;
  let invariants: InvariantReport | { skipped: string };
  let commands: ExperimentReport["commands"];
  let logsOf: ((u: UnitName | "database") => string) | undefined;
  let spans: SpanRecord[] | undefined;
  let tracesNote = "";

  if (target === "local") {
    ({ run, fault, invariants, logsOf, spans, tracesNote } = await onLocalStack(opts, h, false, async (stack) => {
      const at = stack.endpoints;
      // runLoad first registers and logs in its shoppers (seconds on a busy machine): the fault clock starts
      // with the schedule, not before, or the fault would hit the setup. The start is estimated from the first
      // per-second report (within ~0.5 s); the times in the report are then made exact against the load's own
      // startedAt, so a late start shows as such.
      const abort = new AbortController();
      let faultRun: Promise<{ log: FaultLog; t0: number }> | undefined;
      let loaded: RunStats & { startedAt: string };
      try {
        loaded = await runLoad({
          ...loadOpts,
          targets: { identity: at.identity.grpc, catalog: at["catalog-v1"].grpc, orders: at.orders.grpc, payment: at.payment.grpc },
          onSecond: (sec) => {
            if (sec.t !== 0 || faultRun) return;
            // Second 0 is reported once its slowest call (due within [0, 1 s), p99 ≈ its latency) has answered.
            const t0 = Date.now() - sec.p99Ms - 500;
            faultRun = driveLocalFault(stack, h, t0, timing, abort.signal).then((log) => ({ log, t0 }));
            faultRun.catch(() => undefined); // awaited below
          },
        });
      } catch (err) {
        abort.abort();
        await faultRun?.catch(() => undefined); // the driver puts back what it took away before the stack stops
        throw err;
      }
      if (!faultRun) throw new Error("the load never reported its first second, so the fault was never started");
      const { log, t0 } = await faultRun;
      return { run: loaded, fault: rebase(log, t0 - Date.parse(loaded.startedAt)) };
    }));
  } else if (target === "mesh") {
    ({ run, fault, invariants, logsOf, spans, tracesNote } = await onLocalStack(opts, h, true, async (stack) => {
      const mesh = stack.mesh;
      if (!mesh) throw new Error("--target mesh: the stack given was not started with mesh");
      const targets = { ...mesh.targets, xdsBootstrap: JSON.stringify(mesh.bootstrap("load")) };
      const done = await withMeshFault(stack, h, () => runLoad({ ...loadOpts, targets }), opts.root ? join(opts.root, "mesh", "experiments") : undefined);
      // The Istio fault is on for the whole load, applied (and acknowledged by every client) before it started.
      return {
        run: done.result,
        fault: { startMs: 0, endMs: durationMs, events: done.fault.events.map((e) => ({ ...e, atMs: Math.min(e.atMs, durationMs) })) },
      };
    }));
  } else {
    const plan = clusterPlan(h, opts.root ? { root: opts.root, experimentsDir: join(opts.root, "mesh", "experiments") } : {});
    const a = opts.address;
    // KUBECONFIG naming the local control plane (npm start -- --mesh --kube): load through its mesh, wait on its istiod.
    const local = opts.targets || a ? undefined : localMeshInfo(opts.env ?? process.env);
    const targets = opts.targets ?? local?.targets ?? (a ? { identity: a, catalog: a, orders: a, payment: a } : DEFAULT_TARGETS);
    const experimentFile = join(opts.root ? join(opts.root, "mesh", "experiments") : EXPERIMENTS_DIR, `${h.name}.yaml`);
    const settle =
      opts.settle ??
      (local
        ? localSettle(
            local,
            readMeshFile(experimentFile).map((m) => m.obj),
          )
        : undefined);
    const mongodbUri = opts.mongodbUri ?? local?.mongodb;
    let t0 = 0;
    const done = await withClusterFault(
      plan,
      async () => {
        t0 = Date.now();
        return runLoad({ ...loadOpts, targets });
      },
      opts.env,
      settle,
    );
    run = done.result;
    commands = done.commands.map(({ argv, why, code }) => ({ argv, why, code }));
    // The Istio fault is on for the whole load; applied just before it started.
    fault = { startMs: 0, endMs: durationMs, events: [{ atMs: 0, what: `applied ${plan.apply[0].argv.join(" ")} (${t0 ? "ok" : "?"})` }] };
    const accepted = run.placedOrders.filter((o) => o.code === "ok").map((o) => o.orderId);
    invariants = mongodbUri
      ? await checkDataSet(mongodbUri, { settleTimeoutMs: 60_000, accepted })
      : {
          skipped: `no --mongodb-uri given; payment audit over ListPayments instead: ${await auditCharges(targets.payment ?? DEFAULT_TARGETS.payment, accepted)}`,
        };
    if (opts.tracesDir) spans = readSpans(opts.tracesDir);
    else
      tracesNote =
        'on a cluster the spans go to the mesh\'s tracer (OTEL_EXPORTER_OTLP_ENDPOINT, see README "Tracing"); ' +
        "pass --traces-dir with a collector's file export (OTLP JSON lines) to draw them here";
  }

  const actual: FaultTimes = { startMs: fault.startMs, endMs: fault.endMs, restoredMs: fault.restoredMs };
  const checks = evaluate(h, run, actual);
  if (!("skipped" in invariants)) {
    const wanted = h.invariants === "all" ? invariants.results : invariants.results.filter((r) => (h.invariants as string[]).includes(r.name));
    checks.push({
      check: `invariants (${h.invariants === "all" ? "all" : wanted.map((r) => r.name).join(", ")})`,
      ok: wanted.every((r) => r.ok),
      expected: "no violation",
      actual: wanted.every((r) => r.ok)
        ? `${wanted.length} held`
        : wanted
            .filter((r) => !r.ok)
            .map((r) => `${r.name}: ${r.violations}`)
            .join("; "),
    });
  }
  const arithmetic = consistency(run);
  const rateOf = (w: "before" | "during" | "after" | "whole") => {
    const r = successRate(secondsIn(run.timeline, w, actual));
    return Number.isNaN(r) ? null : r;
  };
  const t0 = Date.parse(run.startedAt);
  const picked = spans ? pickTraces(spans, { fromMs: t0 + actual.startMs, toMs: t0 + actual.endMs }) : {};
  const traces: ExperimentReport["traces"] = {
    ...picked,
    note: spans ? (picked.slowest ? "" : `no PlaceOrder trace among the ${spans.length} spans recorded (sampled out?)`) : tracesNote,
  };
  const report: ExperimentReport = {
    name: h.name,
    target,
    hypothesis: h.hypothesis,
    startedAt: run.startedAt,
    passed: checks.every((c) => c.ok) && arithmetic.every((c) => c.ok),
    machine: { cpus: cpus().length, loadAvgStart, loadAvgEnd: loadavg()[0] },
    load: { rate, durationMs, mix: h.load.mix, deadlineMs: h.load.deadlineMs },
    fault: { planned: timing, actual, events: fault.events },
    successRate: { before: rateOf("before"), during: rateOf("during"), after: rateOf("after"), whole: rateOf("whole") },
    recoveryMs: recoveryMs(run.timeline, actual) ?? null,
    orderOutcomes: orderOutcomes(run),
    checks,
    consistency: arithmetic,
    invariants,
    commands,
    traces,
    run,
  };
  const dir = opts.reportsDir === undefined ? join(ROOT, "reports") : opts.reportsDir;
  const files = dir === false ? undefined : writeReport(report, dir);
  // A failed local run keeps each service's last output beside the report, to see why.
  if (files && logsOf && !report.passed) {
    const logDir = files.json.replace(/\.json$/, ".logs");
    mkdirSync(logDir, { recursive: true });
    for (const u of [...UNITS, "database" as const]) writeFileSync(join(logDir, `${u}.log`), logsOf(u));
  }
  return { report, files };
}

/**
 * The local and mesh targets: the runner's own stack (or the one given) under `drive`'s load and fault, then
 * the invariants over the whole data set, the units' logs and the spans.
 */
async function onLocalStack(
  opts: ExperimentOptions,
  h: Hypothesis,
  mesh: boolean,
  drive: (stack: Stack) => Promise<{ run: RunStats & { startedAt: string }; fault: FaultLog }>,
) {
  const recovery = opts.recovery ?? LOCAL_RECOVERY;
  // The runner's own stack writes spans into a directory of its own, read once the stack has stopped (and flushed).
  const ownTraces = opts.stack ? undefined : mkdtempSync(join(tmpdir(), "meshmart-experiment-traces-"));
  const stack =
    opts.stack ?? (await startStack({ logLevel: "warn", recovery, mesh: mesh ? {} : undefined, traces: ownTraces ? { dir: ownTraces } : undefined }));
  let given: SpanRecord[] | undefined;
  let done: { run: RunStats & { startedAt: string }; fault: FaultLog; invariants: InvariantReport | { skipped: string } };
  try {
    const { run, fault } = await drive(stack);
    const accepted = run.placedOrders.filter((o) => o.code === "ok").map((o) => o.orderId);
    // The recovery window: an order still for afterMs is picked up at the next pass. The poll ends as soon as
    // nothing is PENDING; the generous bound is for a busy machine, where each recovery takes seconds.
    const invariants =
      h.invariants === "none"
        ? { skipped: "the hypothesis asks for none" }
        : await checkDataSet(stack.mongoUri, { settleTimeoutMs: recovery.afterMs + 60_000, accepted });
    if (stack.tracesDir && opts.stack) given = readSpans(stack.tracesDir);
    done = { run, fault, invariants };
  } finally {
    if (!opts.stack) await stack.stop();
  }
  const logsOf = (u: UnitName | "database") => (u === "database" ? stack.dbOutput() : stack.output(u));
  return { ...done, logsOf, ...ownSpans(ownTraces, given) };
}

/** The spans the runner's own stack wrote (its directory then removed), else those already read from a given stack. */
function ownSpans(ownTraces: string | undefined, given: SpanRecord[] | undefined): { spans?: SpanRecord[]; tracesNote: string } {
  if (ownTraces) {
    const spans = readSpans(ownTraces);
    rmSync(ownTraces, { recursive: true, force: true });
    return { spans, tracesNote: "" };
  }
  return { spans: given, tracesNote: given ? "" : "the stack given to the runner was started without tracing (StackOptions.traces)" };
}

/** Moves a fault log timed from an estimated start onto the load's own clock (`shiftMs` = estimate − real start). */
export function rebase(log: FaultLog, shiftMs: number): FaultLog {
  const at = (ms: number) => Math.round(ms + shiftMs);
  return {
    startMs: at(log.startMs),
    endMs: at(log.endMs),
    restoredMs: log.restoredMs === undefined ? undefined : at(log.restoredMs),
    events: log.events.map((e) => ({ ...e, atMs: at(e.atMs) })),
  };
}
