// npm run load -- --rate 50 --duration 10s [--mix placeOrder=1,getProduct=5] [--start services|monolith]
//                 [--targets '{"identity":"h:p","catalog":"h:p","orders":"h:p"}' | --target h:p] [--out report.json]
//
// Without --start/--targets/--target it drives the stack `npm start` runs on its default ports. --target
// sends everything to one address (a monolith, or a cluster's ingress gateway / port-forward that routes
// by gRPC service name); --target mesh goes through the local mesh of `npm start -- --mesh` as a proxyless
// client of its own, on the routes a caller in the cluster takes. Prints a summary; --out writes the whole JSON report.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type LocalStack, type Mode, startLocalStack } from "../../stack/child-stack.js";
import { ensureMeshTools } from "../../stack/mesh/istiod.js";
import { DEFAULT_TARGETS, meshTargets, parseDuration, parseTargets } from "./args.js";
import { type LoadReport, type LoadTargets, MAX_DURATION_MS, MAX_RATE, parseMix, runLoad } from "./index.js";

const USAGE = `usage: npm run load -- --rate <per second, <= ${MAX_RATE}> --duration <10s|500ms|2m, <= ${MAX_DURATION_MS / 60_000}m>
  [--mix op=weight,...]   ops: browse search getProduct login placeOrder
  [--start services|monolith|mesh | --targets <json> | --target host:port | --target mesh]
  [--users 10] [--seed 1] [--deadline 5s] [--max-in-flight 1000] [--out report.json] [--json]`;

function summary(r: LoadReport): string {
  const rows = Object.entries(r.byOp).map(([op, s]) => {
    const codes = Object.entries(s.codes)
      .map(([c, n]) => `${c} ${n}`)
      .join(", ");
    const l = s.latencyMs;
    return `  ${op.padEnd(11)} ${String(s.count).padStart(6)}  p50 ${l.p50.toFixed(1).padStart(7)}  p90 ${l.p90.toFixed(1).padStart(7)}  p99 ${l.p99.toFixed(1).padStart(7)}  max ${l.max.toFixed(1).padStart(7)} ms   ${codes}`;
  });
  const confirmed = r.placedOrders.filter((o) => o.status === "CONFIRMED").length;
  return [
    `${r.sent} arrivals at ${r.rate}/s for ${r.durationMs / 1000} s (seed ${r.seed}): ${r.completed} answered, ${r.dropped} dropped, peak ${r.peakInFlight} in flight`,
    ...rows,
    `  orders placed: ${r.placedOrders.length}, confirmed ${confirmed}; generator's own send lag p99 ${r.sendLagMs.p99.toFixed(1)} ms, max ${r.sendLagMs.max.toFixed(1)} ms`,
  ].join("\n");
}

async function main() {
  const { values: a } = parseArgs({
    options: {
      rate: { type: "string" },
      duration: { type: "string", default: "10s" },
      mix: { type: "string" },
      targets: { type: "string" },
      target: { type: "string" },
      start: { type: "string" },
      users: { type: "string", default: "10" },
      seed: { type: "string", default: "1" },
      deadline: { type: "string", default: "5s" },
      "max-in-flight": { type: "string", default: "1000" },
      out: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (a.help || !a.rate) {
    console.log(USAGE);
    process.exit(a.help ? 0 : 2);
  }
  if ([a.start, a.targets, a.target].filter(Boolean).length > 1) throw new RangeError("give one of --start, --targets, --target");
  if (a.start && a.start !== "services" && a.start !== "monolith" && a.start !== "mesh")
    throw new RangeError(`--start must be services, monolith or mesh, got "${a.start}"`);

  let stack: LocalStack | undefined;
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort()); // Ctrl-C: stop arriving, report what was done
  try {
    let targets: LoadTargets = DEFAULT_TARGETS;
    if (a.targets) targets = parseTargets(a.targets);
    if (a.target === "mesh") targets = meshTargets();
    else if (a.target) targets = { identity: a.target, catalog: a.target, orders: a.target, payment: a.target };
    if (a.start) {
      if (a.start === "mesh") ensureMeshTools();
      console.error(`starting the local stack (${a.start})...`);
      stack = await startLocalStack(a.start as Mode);
      targets = stack.targets;
    }
    const report = await runLoad({
      targets,
      rate: Number(a.rate),
      durationMs: parseDuration(a.duration),
      mix: a.mix ? parseMix(a.mix) : undefined,
      users: Number(a.users),
      seed: Number(a.seed),
      deadlineMs: parseDuration(a.deadline, "deadline"),
      maxInFlight: Number(a["max-in-flight"]),
      progress: true,
      signal: controller.signal,
    });
    if (a.out) writeFileSync(a.out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(a.json ? JSON.stringify(report, null, 2) : summary(report));
  } finally {
    await stack?.stop();
  }
}

main().catch((err) => {
  console.error(`load failed: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
