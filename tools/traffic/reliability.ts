// npm run reliability [-- --runs 1000 --seed 1 --soak 10m]: writes RELIABILITY.md and reliability.json from real
// runs on this machine: bad input per RPC (tools/traffic/fuzz), each fault under load with the invariants checked after
// it (tools/traffic/experiment), the rolling graceful restart, and the seeded soak of mixed faults (tools/traffic/soak; --soak 0
// leaves it out). Nothing in the report is typed by hand.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../root.js";
import { startStack } from "../stack/launcher.js";
import { type MeshRollingReport, meshRollingRestart } from "./experiment/mesh-rolling.js";
import type { ExperimentReport } from "./experiment/report.js";
import { runExperiment } from "./experiment/run.js";
import { DELIBERATE_CODES, type FuzzResult, fuzzRpcs } from "./fuzz/index.js";
import { parseDuration } from "./load/args.js";
import { MAX_DURATION_MS } from "./load/index.js";
import { runSoak, type SoakReport } from "./soak/run.js";

const FAULTS = [
  { name: "kill-payment", what: "kill -9 payment, restart after 5 s" },
  { name: "kill-orders", what: "kill -9 orders with sagas in flight, restart after 3 s" },
  { name: "db-outage", what: "stop the database for 10 s, start it again" },
  { name: "slow-payment", what: "payment's Charge delayed 6 s (shopper deadline 3 s) for 8 s" },
  { name: "rolling-restart", what: "SIGTERM + new process for payment, catalog-v1, identity, orders in turn" },
];

const pct = (r: number | null) => (r === null ? "–" : `${(r * 100).toFixed(1)}%`);
const codes = (c: Record<string, number>) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");

/** Failures a client could not safely retry: anything but ok and UNAVAILABLE (a call that never ran, or a keyed PlaceOrder). */
function unsafeFailures(r: ExperimentReport): number {
  let n = 0;
  for (const s of Object.values(r.run.byOp)) for (const [c, k] of Object.entries(s?.codes ?? {})) if (c !== "ok" && c !== "unavailable") n += k;
  return n;
}

async function main() {
  const { values } = parseArgs({
    options: { runs: { type: "string", default: "1000" }, seed: { type: "string", default: "1" }, soak: { type: "string", default: "10m" } },
  });
  const runsPerRpc = Number(values.runs);
  const seed = Number(values.seed);
  if (!(Number.isInteger(runsPerRpc) && runsPerRpc > 0)) throw new Error(`--runs must be a positive whole number, got "${values.runs}"`);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be a whole number, got "${values.seed}"`);
  const soakMs = values.soak === "0" ? 0 : parseDuration(values.soak, "soak");
  if (soakMs !== 0 && !(soakMs >= 30_000 && soakMs <= MAX_DURATION_MS))
    throw new Error(`--soak must be 0 (no soak) or from 30s to ${MAX_DURATION_MS / 60_000}m, got "${values.soak}"`);
  const started = new Date();
  const loadAtStart = loadavg()[0];

  console.error(`fuzzing every RPC (${runsPerRpc} messages each, seed ${seed})...`);
  const stack = await startStack({ logLevel: "warn" });
  let fuzz: FuzzResult[];
  try {
    const at = stack.endpoints;
    fuzz = await fuzzRpcs(
      { identity: at.identity.grpc, catalog: at["catalog-v1"].grpc, orders: at.orders.grpc, payment: at.payment.grpc },
      { runsPerRpc, seed },
    );
  } finally {
    await stack.stop();
  }

  const faults: { name: string; what: string; report: ExperimentReport; files?: { md: string } }[] = [];
  for (const f of FAULTS) {
    console.error(`fault ${f.name}...`);
    const { report, files } = await runExperiment({ name: f.name, reportsDir: join(ROOT, "reports"), seed });
    faults.push({ ...f, report, files });
  }

  console.error("rolling restart through the local mesh, with the VirtualServices' retries and without...");
  const meshRolls = [await meshRollingRestart({ retries: true, seed }), await meshRollingRestart({ retries: false, seed })];

  let soak: SoakReport | undefined;
  if (soakMs) {
    console.error(`soak for ${soakMs / 1000} s, seed ${seed}...`);
    soak = await runSoak({ seed, durationMs: soakMs, log: (line) => console.error(`  ${line}`) });
  }

  const md: string[] = [
    "# RELIABILITY",
    "",
    `Written by \`npm run reliability\` (tools/traffic/reliability.ts) on ${started.toISOString()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, 1-minute load average ${loadAtStart.toFixed(1)} when it started. Every figure below comes from that run; re-run it to refresh. Timings are from a machine shared with other work, so treat latencies and recovery times as upper bounds.`,
    "",
    "## Bad input per RPC",
    "",
    `Each RPC got ${runsPerRpc} generated messages (fast-check, seed ${seed}: random, boundary and near-valid values, huge strings, missing and unknown fields, invalid UTF-8, broken encodings; no request message has an enum field, so unknown enum values are exercised only by the generator's own tests) plus raw garbage frames and an oversized message, on a fresh local stack (tools/traffic/fuzz). A deliberate status is anything but INTERNAL, UNKNOWN, a crash or a hang past the deadline.`,
    "",
    "| RPC | inputs tried | responses by code | healthy after |",
    "|---|---|---|---|",
    ...fuzz.map((r) => `| ${r.rpc} | ${r.tried} | ${codes(r.codes)} | ${r.healthyAfter ? "yes" : "NO"} |`),
    "",
    `Total: ${fuzz.reduce((n, r) => n + r.tried, 0)} inputs over ${fuzz.length} RPCs; ${fuzz.filter((r) => r.healthyAfter).length}/${fuzz.length} left every service healthy; answers outside the deliberate codes: ${fuzz.reduce((n, r) => n + Object.entries(r.codes).reduce((m, [code, count]) => m + (DELIBERATE_CODES.has(code) ? 0 : count), 0), 0)}.`,
    "",
    "## Faults under load",
    "",
    "Each fault ran on a fresh local stack (every service a real process, embedded FerretDB) under the steady open-loop shopper load of its hypothesis file (`mesh/experiments/<name>.hypothesis.yaml`), orders' recovery loop at a 500 ms interval picking up orders still for 4 s. After the load, the checker waited (bounded poll on the data) until no order was PENDING, then checked every invariant over the whole data set (tools/traffic/invariants.ts).",
    "",
    "| fault | load | machine load avg (start → end) | success rate before / during / after | time to recover | PlaceOrder answers | invariants held | settled after | hypothesis |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const { name, what, report: r } of faults) {
    const inv = "skipped" in r.invariants ? "skipped" : `${r.invariants.results.filter((i) => i.ok).length}/${r.invariants.results.length}`;
    const settle = "skipped" in r.invariants ? "–" : `${(r.invariants.settleMs / 1000).toFixed(1)} s`;
    md.push(
      `| **${name}**: ${what} | ${r.load.rate}/s, ${r.load.durationMs / 1000} s, ${r.run.sent} calls | ${r.machine.loadAvgStart.toFixed(1)} → ${r.machine.loadAvgEnd.toFixed(1)} | ${pct(r.successRate.before)} / ${pct(r.successRate.during)} / ${pct(r.successRate.after)} | ${r.recoveryMs === null ? "not within the run" : `${(r.recoveryMs / 1000).toFixed(1)} s`} | ${codes(r.orderOutcomes)} | ${inv} | ${settle} | ${r.passed ? "held" : "NOT held"} |`,
    );
  }
  md.push(
    "",
    "Success rate = calls answered OK / calls due in that part of the run (all operations). A PlaceOrder answered OK may carry a FAILED or PENDING order: the shopper is told, nothing is lost. Time to recover = from the end of the fault (restart begun, database started, knob off) to the first second from which every later second had ≥ 90% OK.",
    "",
    "### Invariants checked after every fault",
    "",
    "| fault | orders (confirmed / failed / pending) | payments | " +
      (faults[0] && !("skipped" in faults[0].report.invariants) ? faults[0].report.invariants.results.map((i) => i.name).join(" | ") : "") +
      " |",
    `|---|---|---|${(faults[0] && !("skipped" in faults[0].report.invariants) ? faults[0].report.invariants.results : []).map(() => "---").join("|")}|`,
  );
  for (const { name, report: r } of faults) {
    if ("skipped" in r.invariants) continue;
    const c = r.invariants.counts;
    md.push(
      `| ${name} | ${c.orders} (${c.confirmed} / ${c.failed} / ${c.pending}) | ${c.payments} | ${r.invariants.results.map((i) => (i.ok ? `✅ ${i.checked}` : `❌ ${i.violations}: ${i.offending[0]}`)).join(" | ")} |`,
    );
  }
  const rolling = faults.find((f) => f.name === "rolling-restart")?.report;
  md.push(
    "",
    "## Graceful restart",
    "",
    "Each service in turn gets SIGTERM (the kit turns health NOT_SERVING, stops accepting, lets in-flight calls finish, closes the database) and a new process is started on the same port. What counts as a failure a client could not retry safely: any status other than OK and UNAVAILABLE. UNAVAILABLE is what a call gets while the port is closed or the connection is being drained (the call never reached a handler), so repeating it is safe; PlaceOrder is also safe to repeat after any failure because it carries an idempotency key (the same key gives the same order and at most one charge). The load generator does not retry; a client should retry UNAVAILABLE once after a short pause.",
    "",
    rolling
      ? `Result: ${unsafeFailures(rolling)} failures a client could not retry safely; ${Object.values(rolling.run.byOp).reduce((n, s) => n + (s?.codes.unavailable ?? 0), 0)} UNAVAILABLE (retryable) of ${rolling.run.sent} calls; codes by op: ${Object.entries(
          rolling.run.byOp,
        )
          .map(([op, s]) => `${op}: ${codes(s?.codes ?? {})}`)
          .join("; ")}.`
      : "Not run.",
    "",
    ...meshRollingSection(rolling, meshRolls),
    "",
    ...soakSection(soak),
    "",
    "## What this does not show",
    "",
    "- These faults are process-level on one machine (the mesh rolling restart too: the local mesh's istiod and proxyless clients are real, but there is no kubelet, endpoints controller or Envoy). The same experiments through Istio (`npm run experiment -- <name> --target cluster`) need a cluster; their command plans are tested offline with a fake kubectl only.",
    "- STRICT mTLS and the deny-by-default AuthorizationPolicy are enforced by real istiod on the local mesh and proven by calls in `npm test` (test/mesh-security.test.ts: plaintext and foreign-CA clients refused, every unlisted caller PERMISSION_DENIED before the handler; experiment `mtls-plaintext --target mesh`); that Envoy sidecars enforce the same policy can only be shown on a cluster.",
    "",
    "Per-fault reports (JSON, Markdown, SVG chart) are written to `reports/` (not committed).",
    "",
  );
  writeFileSync(join(ROOT, "RELIABILITY.md"), md.join("\n"));
  writeFileSync(
    join(ROOT, "reliability.json"),
    `${JSON.stringify({ startedAt: started.toISOString(), runsPerRpc, seed, fuzz, faults: faults.map(({ what, report }) => ({ what, ...report, run: undefined, timeline: report.run.timeline, unsafeFailures: unsafeFailures(report) })), meshRollingRestart: meshRolls, soak }, null, 2)}\n`,
  );
  // The project's formatter has the last word on the JSON's layout, so `npm test`'s lint stays clean.
  execFileSync(join(ROOT, "node_modules", ".bin", "biome"), ["format", "--write", join(ROOT, "reliability.json")], { stdio: "ignore" });
  console.error("wrote RELIABILITY.md and reliability.json");
}

/** RELIABILITY.md's section on the rolling restart through the local mesh, beside the one without it. */
function meshRollingSection(local: ExperimentReport | undefined, rolls: MeshRollingReport[]): string[] {
  const [withRetries, without] = rolls;
  const row = (what: string, r: MeshRollingReport) =>
    `| ${what} | ${r.rate}/s, ${r.durationMs / 1000} s, ${r.sent} calls | ${pct(r.successDuring)} | ${pct(r.successWhole)} | ${codes(r.codes)} | ${r.invariants.results.filter((i) => i.ok).length}/${r.invariants.results.length} |`;
  return [
    "## Rolling restart through the local mesh",
    "",
    "The same four services restarted in turn, once as above (a new process on the same port after the old one exited: the port is closed for the time a process takes to start) and once through the local mesh (real istiod fed mesh/base, the load a proxyless gRPC client obeying the VirtualServices of mesh/base/routes.yaml) the way a Deployment's rolling update does it: the new process starts on an address of its own with a WorkloadEntry of its own (istiod pushed it, every client acknowledged) and is SERVING; 1.5 s later (a Deployment's minReadySeconds, above the callers' 1 s reconnect backoff cap) the old process gets SIGTERM while its endpoint is being taken out (`Stack.rollOver`, tools/stack/launcher.ts). Calls that still reach the old process are refused with UNAVAILABLE, which the routes retry (`retryOn: ...unavailable`, 2 attempts). Run a third time with every route's retries set to none, to show what the retries account for. Success = calls answered OK / calls due while the services were being restarted (all operations).",
    "",
    "| run | load | success while restarting | whole run | answers | invariants held |",
    "|---|---|---|---|---|---|",
    local
      ? `| without the mesh (the rolling-restart fault above) | ${local.load.rate}/s, ${local.load.durationMs / 1000} s, ${local.run.sent} calls | ${pct(local.successRate.during)} | ${pct(local.successRate.whole)} | ${codes(
          Object.values(local.run.byOp).reduce<Record<string, number>>((a, s) => {
            for (const [c, n] of Object.entries(s?.codes ?? {})) a[c] = (a[c] ?? 0) + n;
            return a;
          }, {}),
        )} | ${"skipped" in local.invariants ? "skipped" : `${local.invariants.results.filter((i) => i.ok).length}/${local.invariants.results.length}`} |`
      : "| without the mesh | not run | | | | |",
    row("through the local mesh, with the VirtualServices' retries", withRetries),
    row("through the local mesh, retries removed", without),
  ];
}

const secs = (ms: number | null) => (ms === null ? "not reached" : `${(ms / 1000).toFixed(1)} s`);

/** RELIABILITY.md's soak section, from the soak's report. */
export function soakSection(r: SoakReport | undefined): string[] {
  if (!r) return ["## Seeded soak", "", "Not run (--soak 0)."];
  const kinds = new Map<string, number>();
  for (const f of r.faults) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  const inv = r.invariants;
  return [
    "## Seeded soak",
    "",
    `\`npm run reliability -- --soak ${r.durationMs / 1000}s --seed ${r.seed}\` (tools/traffic/soak): steady shopper load (${r.rate}/s, deadline 3 s) on a fresh local stack for ${r.durationMs / 1000} s while a schedule drawn from seed ${r.seed} (tools/traffic/soak/schedule.ts: the same seed gives the same schedule) injected the faults below, ${r.overlapping} of them overlapping another one. After the load, the checker waited until no order was PENDING and checked every invariant over the whole data set.`,
    "",
    "| faults injected | orders placed (answered OK: confirmed / failed / pending when answered) | calls | lost | duplicate charges | stuck | invariants held | worst time to every service SERVING | worst time to ≥ 90% OK |",
    "|---|---|---|---|---|---|---|---|---|",
    `| ${r.faults.length} (${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}) | ${r.placed.ok} of ${r.placed.answered} (${r.placed.confirmed} / ${r.placed.failed} / ${r.placed.pending}) | ${r.sent}: ${codes(r.codes)} | ${r.lost} | ${r.duplicateCharges} | ${r.stuck} | ${inv.results.filter((i) => i.ok).length}/${inv.results.length} (${inv.counts.orders} orders, ${inv.counts.payments} payments, settled after ${(inv.settleMs / 1000).toFixed(1)} s) | ${secs(r.worstServingAfterMs)} | ${secs(r.worstClientOkAfterMs)} |`,
    "",
    "Lost = accepted-orders-exist violations; duplicate charges = confirmed-charged-once plus no-orphan-charges violations; stuck = no-pending violations. Per fault, from its end (restart begun, database started, knob off): until every service answered SERVING on its health port again, and until the first second of the load with at least 90% of its calls OK (another fault may already be running by then).",
    "",
    "| # | at | fault | every service SERVING after | ≥ 90% OK after | notes |",
    "|---|---|---|---|---|---|",
    ...r.faults.map(
      (f) =>
        `| ${f.id} | ${(f.startedMs / 1000).toFixed(1)} s | ${f.what} | ${secs(f.servingAfterMs)} | ${secs(f.clientOkAfterMs)} | ${f.problems.join("; ") || "–"} |`,
    ),
  ];
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
