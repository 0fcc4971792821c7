// npm run bench: meshmart's benchmarks in one run on this machine (a few minutes on 2 cores). Writes
// BENCHMARKS.md and bench/results.json. Not part of npm test: figures are measured, not asserted.
//
//   npm run bench -- [--seconds 6] [--concurrency 16] [--warmup 2] [--order-rate 50] [--order-seconds 10]
//   npm run bench -- --render    rewrite BENCHMARKS.md from bench/results.json, measuring nothing
//   npm run bench -- --only tracing   measure section 6 alone and add it to bench/results.json and BENCHMARKS.md
//   npm run bench -- --only kit       measure section 1 (the kit's overhead) alone, likewise
//   npm run bench -- --only memory    measure the RSS figures alone (services and monolith, the same loads as a
//                                     full run), likewise; the other figures of bench/results.json stay as they were
//
// 1. the kit's overhead: raw grpc-js vs bare connect-node vs the kit, an in-memory GetProduct (echo.ts)
// 2. GetProduct and PlaceOrder, services vs monolith, same load, same database (stacks.ts)
// 3. PlaceOrder p99 at 50 rps open loop, RSS per process idle and under load, cold start; a CPU profile
//    of the services when the p99 target is missed (profile.ts)
// 4. ghz driving the same GetProduct load, against the bench's closed loop and the load generator (ghz.ts)
// 5. the local mesh against the services mode: the same loads through istiod's routes, istiod's RSS and CPU,
//    config edit → behaviour change (mesh.ts)
// 6. tracing off / 10% / 100% sampled, GetProduct and PlaceOrder (tracing.ts)
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../../root.js";
import { echoBench } from "./echo.js";
import { machine } from "./machine.js";
import { measureMesh } from "./mesh.js";
import { type BenchResults, markdown, type SectionRun, TARGETS } from "./report.js";
import { measureMode, profilePlaceOrder, type Settings } from "./stacks.js";
import { measureTracing } from "./tracing.js";

const { values: a } = parseArgs({
  options: {
    seconds: { type: "string", default: "6" },
    concurrency: { type: "string", default: "16" },
    warmup: { type: "string", default: "2" },
    "order-rate": { type: "string", default: "50" },
    "order-seconds": { type: "string", default: "10" },
    "cross-check-rate": { type: "string", default: "200" },
    out: { type: "string", default: ROOT },
    /** Only rewrite BENCHMARKS.md from the bench/results.json already there (after editing report.ts). */
    render: { type: "boolean", default: false },
    only: { type: "string" },
    "tracing-rounds": { type: "string", default: "2" },
  },
});

const round1 = (x: number) => Math.round(x * 10) / 10;

async function main() {
  if (a.render) {
    const saved = JSON.parse(readFileSync(join(a.out, "bench", "results.json"), "utf8")) as BenchResults;
    writeFileSync(join(a.out, "BENCHMARKS.md"), markdown(saved));
    return;
  }
  const settings: Settings = {
    seconds: Number(a.seconds),
    concurrency: Number(a.concurrency),
    warmupSeconds: Number(a.warmup),
    orderRate: Number(a["order-rate"]),
    orderSeconds: Number(a["order-seconds"]),
    crossCheckRate: Number(a["cross-check-rate"]),
  };
  if (a.only !== undefined && !["tracing", "kit", "memory"].includes(a.only)) throw new Error(`--only takes "tracing", "kit" or "memory", got "${a.only}"`);
  if (a.only !== undefined) {
    const file = join(a.out, "bench", "results.json");
    const saved = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
    const loadAtStart = loadavg()[0];
    let failedCalls = 0;
    if (a.only === "tracing") saved.tracing = await measureTracing({ ...saved.settings, ...settings }, Number(a["tracing-rounds"]));
    else if (a.only === "kit") saved.echo = await echoBench(settings);
    else {
      // The same loads as a full run (measureMode), keeping only what they say about memory, and how many of
      // their calls failed (a memory setting must not cost failures).
      for (const mode of ["services", "monolith"] as const) {
        const { result, extras } = await measureMode(mode, settings);
        saved[mode].rssIdleMB = result.rssIdleMB;
        saved[mode].rssLoadMB = result.rssLoadMB;
        const open = extras?.placeOrderOpenLoop;
        failedCalls += result.getProduct.errors + result.placeOrder.errors + (open ? open.count - (open.codes.ok ?? 0) : 0);
        failedCalls += extras ? extras.crossCheck.openLoop.loadGenerator.count - (extras.crossCheck.openLoop.loadGenerator.codes.ok ?? 0) : 0;
      }
    }
    if (a.only !== "tracing") {
      const { date, commit } = machine();
      const run: SectionRun = { date, commit, load: { start: round1(loadAtStart), end: round1(loadavg()[0]) } };
      if (a.only === "memory") run.failedCalls = failedCalls;
      saved.sections = { ...saved.sections, [a.only]: run };
    }
    writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
    writeFileSync(join(a.out, "BENCHMARKS.md"), markdown(saved));
    console.log(markdown(saved));
    return;
  }
  const started = performance.now();
  const loadAtStart = round1(loadavg()[0]);
  const echo = await echoBench(settings);
  const monolith = await measureMode("monolith", settings);
  const services = await measureMode("services", settings);
  const mesh = await measureMesh(settings);
  const p99 = services.extras!.placeOrderOpenLoop.latencyMs.p99;
  const profile = p99 > TARGETS.placeOrderP99Ms ? await profilePlaceOrder(settings) : undefined;
  const tracing = await measureTracing(settings, Number(a["tracing-rounds"]));
  const results: BenchResults = {
    machine: machine(),
    settings,
    echo,
    coldStartMs: { services: services.result.startMs, monolith: monolith.result.startMs },
    services: services.result,
    monolith: monolith.result,
    extras: services.extras!,
    profile,
    mesh,
    tracing,
    benchSeconds: 0,
  };
  results.benchSeconds = Math.round((performance.now() - started) / 1000);
  results.load = { start: loadAtStart, end: round1(loadavg()[0]) };
  writeFileSync(join(a.out, "bench", "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md = markdown(results);
  writeFileSync(join(a.out, "BENCHMARKS.md"), md);
  console.log(md);
}

// Exit once the report is written: grpc-js-xds keeps its xDS client's reconnect timers to the (stopped) istiod
// alive after the mesh part closed its channels, and it has no public close, so the process would never end.
main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
    process.exit(1);
  },
);
