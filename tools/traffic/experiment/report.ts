// Writes an experiment's report: reports/<name>-<timestamp>.json (everything), .md (for people) and .svg (the chart).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { InvariantReport } from "../data-set.js";
import { type TraceView, waterfallSvg } from "../trace/waterfall.js";
import { chartSvg } from "./chart.js";
import type { CheckResult, FaultTimes, RunStats } from "./evaluate.js";
import type { Hypothesis } from "./hypothesis.js";

export interface ExperimentReport {
  name: string;
  /** mesh: the experiment's Istio YAML applied to the real istiod of a local mesh (proxyless gRPC). */
  target: "local" | "cluster" | "mesh";
  hypothesis: string;
  startedAt: string;
  passed: boolean;
  /** 1-minute load average at the start and end of the load, and the CPU count: figures from a busy machine read differently. */
  machine: { cpus: number; loadAvgStart: number; loadAvgEnd: number };
  load: { rate: number; durationMs: number; mix?: Hypothesis["load"]["mix"]; deadlineMs?: number };
  fault: { planned: Hypothesis["fault"]; actual: FaultTimes; events: { atMs: number; what: string }[] };
  /** Success rate of all calls in each part of the run (ok / completed). */
  successRate: { before: number | null; during: number | null; after: number | null; whole: number | null };
  recoveryMs: number | null;
  /** PlaceOrder answers: "ok CONFIRMED", "ok FAILED", "ok PENDING", or the error code. */
  orderOutcomes: Record<string, number>;
  checks: CheckResult[];
  consistency: CheckResult[];
  invariants: InvariantReport | { skipped: string };
  commands?: { argv: string[]; why: string; code: number }[];
  /** The slowest PlaceOrder's trace and a failed one's (in the fault window when there is one), or why there are none. */
  traces?: { slowest?: TraceView; failed?: TraceView; note: string };
  run: RunStats;
}

/** Where a trace sits in the run (ms since the load started). */
const atMs = (r: ExperimentReport, v: TraceView) => v.startMs - Date.parse(r.startedAt);

function traceLine(r: ExperimentReport, what: string, v: TraceView | undefined, file: string): string[] {
  if (!v) return [`${what}: none recorded.`, ""];
  const at = atMs(r, v);
  const during = at >= r.fault.actual.startMs && at <= r.fault.actual.endMs;
  const failing = v.rows.filter((row) => row.error || (row.code !== "" && row.code !== "OK"));
  return [
    `**${what}**: order ${v.orderId || "?"} at ${(at / 1000).toFixed(1)} s${during ? " (in the fault window)" : ""}, ${v.durationMs.toFixed(1)} ms, ` +
      `${v.rows.length} spans, PlaceOrder answered ${v.code || "?"}` +
      (failing.length ? `; failing: ${failing.map((row) => `${row.service} ${row.name} ${row.code || "ERROR"}`).join(", ")}` : "") +
      ".",
    "",
    `![${what}](${file})`,
    "",
  ];
}

const fmtRate = (r: number | null) => (r === null ? "–" : `${(r * 100).toFixed(1)}%`);
const mark = (ok: boolean) => (ok ? "✅" : "❌");

export function markdown(r: ExperimentReport, svgName: string): string {
  const lines = [
    `# Experiment ${r.name} (${r.target}) — ${r.passed ? "hypothesis held" : "hypothesis NOT held"}`,
    "",
    `> ${r.hypothesis}`,
    "",
    `Started ${r.startedAt}; load ${r.load.rate}/s for ${r.load.durationMs / 1000} s; fault from ${(r.fault.actual.startMs / 1000).toFixed(1)} s to ${(r.fault.actual.endMs / 1000).toFixed(1)} s` +
      (r.fault.actual.restoredMs !== undefined ? `, restored at ${(r.fault.actual.restoredMs / 1000).toFixed(1)} s` : "") +
      `. Machine: ${r.machine.cpus} CPUs, load average ${r.machine.loadAvgStart.toFixed(1)} at the start, ${r.machine.loadAvgEnd.toFixed(1)} at the end.`,
    "",
    `![latency and errors over time](${svgName})`,
    "",
    `| success rate | before the fault | during | after | whole run |`,
    "|---|---|---|---|---|",
    `| all calls | ${fmtRate(r.successRate.before)} | ${fmtRate(r.successRate.during)} | ${fmtRate(r.successRate.after)} | ${fmtRate(r.successRate.whole)} |`,
    "",
    `Time to recover after the fault ended: ${r.recoveryMs === null ? "not recovered within the run" : `${r.recoveryMs} ms`}.`,
    "",
    `PlaceOrder answers: ${
      Object.entries(r.orderOutcomes)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ") || "none"
    }.`,
    "",
    "## Hypothesis checks",
    "",
    "| | check | expected | actual |",
    "|---|---|---|---|",
    ...r.checks.map((c) => `| ${mark(c.ok)} | ${c.check} | ${c.expected} | ${c.actual} |`),
    "",
    "## Invariants over the whole data set",
    "",
  ];
  if ("skipped" in r.invariants) lines.push(`Not checked: ${r.invariants.skipped}`);
  else {
    const c = r.invariants.counts;
    lines.push(
      `${c.orders} orders (${c.confirmed} confirmed, ${c.failed} failed, ${c.pending} pending), ${c.payments} payments, ${c.ledgerEntries} ledger entries; no order PENDING after ${r.invariants.settleMs} ms of waiting.`,
      "",
      "| | invariant | checked | violations | first offending |",
      "|---|---|---|---|---|",
      ...r.invariants.results.map((i) => `| ${mark(i.ok)} | ${i.description} | ${i.checked} | ${i.violations} | ${i.offending.slice(0, 3).join("; ")} |`),
    );
  }
  lines.push("", "## Traces", "");
  if (r.traces?.slowest || r.traces?.failed) {
    lines.push(
      "Waterfalls of two orders' traces (service, method, duration and gRPC code per span; `npm run trace -- <order id>` draws any other).",
      "",
      ...traceLine(r, "Slowest PlaceOrder", r.traces.slowest, traceFiles(svgName).slowest),
      ...traceLine(r, "A failed order", r.traces.failed, traceFiles(svgName).failed),
    );
  } else lines.push(`No traces: ${r.traces?.note || "none recorded"}.`);
  lines.push("", "## Per operation", "", "| op | calls | codes | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|");
  for (const [op, s] of Object.entries(r.run.byOp)) {
    if (!s) continue;
    const codes = Object.entries(s.codes)
      .map(([c, n]) => `${c} ${n}`)
      .join(", ");
    lines.push(`| ${op} | ${s.count} | ${codes} | ${s.latencyMs.p50.toFixed(1)} | ${s.latencyMs.p99.toFixed(1)} | ${s.latencyMs.max.toFixed(1)} |`);
  }
  lines.push("", "## Report arithmetic", "", ...r.consistency.map((c) => `- ${mark(c.ok)} ${c.check}: ${c.actual}${c.ok ? "" : ` (expected ${c.expected})`}`));
  lines.push("", "## Fault timeline", "", ...r.fault.events.map((e) => `- ${(e.atMs / 1000).toFixed(2)} s: ${e.what}`));
  if (r.commands?.length) lines.push("", "## kubectl", "", ...r.commands.map((c) => `- \`${c.argv.join(" ")}\` → exit ${c.code} (${c.why})`));
  return `${lines.join("\n")}\n`;
}

/** The waterfalls' file names beside the chart's. */
const traceFiles = (svg: string) => ({ slowest: svg.replace(/\.svg$/, "-slowest-order.svg"), failed: svg.replace(/\.svg$/, "-failed-order.svg") });

/** Writes the report files (JSON, markdown, the chart, and a waterfall per drawn trace); returns their paths. */
export function writeReport(r: ExperimentReport, dir: string): { json: string; md: string; svg: string; traces: string[] } {
  mkdirSync(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, "-");
  const base = join(dir, `${r.name}-${stamp}`);
  const paths = { json: `${base}.json`, md: `${base}.md`, svg: `${base}.svg` };
  writeFileSync(paths.json, `${JSON.stringify(r, null, 2)}\n`);
  const marks = (["slowest", "failed"] as const).flatMap((k) => {
    const v = r.traces?.[k];
    return v ? [{ atMs: atMs(r, v), label: k === "slowest" ? "slowest order" : "failed order" }] : [];
  });
  writeFileSync(paths.svg, chartSvg(`${r.name} (${r.target}): latency and errors per second`, r.run.timeline, r.fault.actual, r.load.durationMs, marks));
  writeFileSync(paths.md, markdown(r, `${r.name}-${stamp}.svg`));
  const traces: string[] = [];
  const files = traceFiles(paths.svg);
  for (const k of ["slowest", "failed"] as const) {
    const v = r.traces?.[k];
    if (!v) continue;
    const run = { runMs: r.load.durationMs, fault: r.fault.actual, atMs: atMs(r, v) };
    writeFileSync(files[k], waterfallSvg(`${r.name} (${r.target}): ${k === "slowest" ? "the slowest PlaceOrder" : "a failed order"}`, v, run));
    traces.push(files[k]);
  }
  return { ...paths, traces };
}
