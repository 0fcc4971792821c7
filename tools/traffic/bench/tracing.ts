// What tracing costs: the same closed loops (GetProduct, PlaceOrder) on a services stack with tracing off,
// 10% sampled and 100% sampled (spans to each service's file, as on `npm start`). The variants run in the
// order off, 10%, 100%, then back (100%, 10%, off), each on a fresh stack, so a machine growing busier or
// quieter during the run weighs on every variant alike; each figure is the mean of its runs.
import { loadavg } from "node:os";
import { clientPool } from "#kit";
import type { Ready } from "../../stack/child-stack.js";
import type { Figures } from "./closed-loop.js";
import { machine } from "./machine.js";
import { benchCalls, type Settings, timedStart, warmThenMeasure } from "./stacks.js";

export const TRACING_VARIANTS = [
  { name: "off", env: { OTEL_SDK_DISABLED: "true" } },
  { name: "10%", env: { OTEL_SDK_DISABLED: "false", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1" } },
  { name: "100%", env: { OTEL_SDK_DISABLED: "false", OTEL_TRACES_SAMPLER: "parentbased_always_on" } },
] as const;

export interface TracingRun {
  variant: string;
  getProduct: Figures;
  placeOrder: Figures;
  /** Spans the services exported (all units, tracing_spans_exported_total) and dropped, by the end of the run. */
  spansExported: number;
  spansDropped: number;
  /** 1-minute load average before and after the run. */
  loadAvg: [number, number];
}

export interface TracingBench {
  /** When and on which commit (this section may be measured apart from the rest: `--only tracing`). */
  date: string;
  commit: string;
  /** The closed loops' settings of this section's runs. */
  seconds: number;
  concurrency: number;
  runs: TracingRun[];
}

async function spanCounts(ready: Ready): Promise<{ exported: number; dropped: number }> {
  let exported = 0;
  let dropped = 0;
  for (const v of Object.values(ready)) {
    if (typeof v !== "object" || !v || !("admin" in v)) continue;
    const text = await (await fetch(`${(v as { admin: string }).admin}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    for (const line of text.split("\n")) {
      if (line.startsWith("tracing_spans_exported_total{")) exported += Number(line.split(" ").pop());
      if (line.startsWith("tracing_spans_dropped_total{")) dropped += Number(line.split(" ").pop());
    }
  }
  return { exported, dropped };
}

export async function measureTracing(s: Settings, rounds = 2): Promise<TracingBench> {
  const order = [...TRACING_VARIANTS];
  const plan = Array.from({ length: rounds }, (_, i) => (i % 2 === 0 ? order : [...order].reverse())).flat();
  const runs: TracingRun[] = [];
  for (const v of plan) {
    const before = loadavg()[0];
    const { stack } = await timedStart("services", { ...v.env });
    const clients = clientPool();
    try {
      const { getProduct, placeOrder } = await benchCalls(stack, `tracing-${v.name}`, clients);
      const gp = await warmThenMeasure(`tracing ${v.name} GetProduct`, getProduct, s);
      const po = await warmThenMeasure(`tracing ${v.name} PlaceOrder`, placeOrder, s);
      await new Promise((r) => setTimeout(r, 1500)); // the last spans reach the exporter (1 s batches)
      const spans = await spanCounts(stack.ready);
      runs.push({
        variant: v.name,
        getProduct: gp,
        placeOrder: po,
        spansExported: spans.exported,
        spansDropped: spans.dropped,
        loadAvg: [before, loadavg()[0]],
      });
    } finally {
      clients.close();
      await stack.stop();
    }
  }
  const { date, commit } = machine();
  return { date, commit, seconds: s.seconds, concurrency: s.concurrency, runs };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);
const pct = (a: number, b: number) => (b > 0 ? `${a >= b ? "+" : ""}${(((a - b) / b) * 100).toFixed(1)}%` : "n/a");
const f2 = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(1));

/** The BENCHMARKS.md section. */
export function tracingMarkdown(t: TracingBench, fallback: { concurrency: number; seconds: number }): string[] {
  const { concurrency, seconds } = { ...fallback, ...(t.seconds ? { seconds: t.seconds, concurrency: t.concurrency } : {}) };
  const by = (name: string) => t.runs.filter((r) => r.variant === name);
  const off = by("off");
  const agg = (runs: TracingRun[]) => ({
    gpRps: mean(runs.map((r) => r.getProduct.rps)),
    gpP50: mean(runs.map((r) => r.getProduct.p50ms)),
    poRps: mean(runs.map((r) => r.placeOrder.rps)),
    poP50: mean(runs.map((r) => r.placeOrder.p50ms)),
    spans: mean(runs.map((r) => r.spansExported)),
    errors: runs.reduce((n, r) => n + r.getProduct.errors + r.placeOrder.errors, 0),
  });
  const base = agg(off);
  const ten = agg(by("10%"));
  const row = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  const out = [
    "## 6. What tracing costs: off, 10% and 100% sampled",
    "",
    `Measured ${t.date} on commit ${t.commit}. Services mode, closed loops at ${concurrency} callers for ${seconds} s (after warm-up) on a fresh stack per run; spans to each service's file ` +
      "(OTLP/JSON lines, 1 s batches) as `npm start` writes them. Off = `OTEL_SDK_DISABLED=true` (no SDK, no interceptor). " +
      `The variants ran in the order ${t.runs.map((r) => r.variant).join(", ")}; figures are the mean of each variant's ${off.length} runs.`,
    "",
    row(["tracing", "GetProduct rps", "GetProduct p50", "PlaceOrder rps", "PlaceOrder p50", "spans exported per run", "errors"]),
    row(["---", "---", "---", "---", "---", "---", "---"]),
  ];
  for (const name of ["off", "10%", "100%"]) {
    const a = agg(by(name));
    const vs = (x: number, b: number) => (name === "off" ? "" : ` (${pct(x, b)})`);
    out.push(
      row([
        name,
        `${Math.round(a.gpRps)}${vs(a.gpRps, base.gpRps)}`,
        `${f2(a.gpP50)} ms${vs(a.gpP50, base.gpP50)}`,
        `${Math.round(a.poRps)}${vs(a.poRps, base.poRps)}`,
        `${f2(a.poP50)} ms${vs(a.poP50, base.poP50)}`,
        Math.round(a.spans),
        a.errors,
      ]),
    );
  }
  const worst = Math.min(ten.gpRps / base.gpRps, ten.poRps / base.poRps);
  out.push(
    "",
    `Target: 10% sampling costs ≤ 5% throughput. Measured: GetProduct ${pct(ten.gpRps, base.gpRps)}, PlaceOrder ${pct(ten.poRps, base.poRps)}: ` +
      `**${worst >= 0.95 ? "met" : "missed"}**${worst >= 0.95 ? "" : " (see the runs below for how much of it is run-to-run spread)"}.`,
    "",
    "Each run (1-minute load average before → after; the machine is shared, so read differences of a few percent as noise):",
    "",
    row(["run", "tracing", "GetProduct rps / p50", "PlaceOrder rps / p50", "spans exported / dropped", "load average"]),
    row(["---", "---", "---", "---", "---", "---"]),
    ...t.runs.map((r, i) =>
      row([
        i + 1,
        r.variant,
        `${r.getProduct.rps} / ${f2(r.getProduct.p50ms)} ms`,
        `${r.placeOrder.rps} / ${f2(r.placeOrder.p50ms)} ms`,
        `${r.spansExported} / ${r.spansDropped}`,
        `${r.loadAvg[0].toFixed(1)} → ${r.loadAvg[1].toFixed(1)}`,
      ]),
    ),
    "",
  );
  return out;
}
