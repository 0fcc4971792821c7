// npm run experiment -- <name> [--target local|cluster|mesh] [--rate N] [--duration 20s] [--address host:port]
//   [--mongodb-uri URI] [--traces-dir DIR] [--out reports]
// Runs the experiment described by mesh/experiments/<name>.hypothesis.yaml and writes
// reports/<name>-<timestamp>.{json,md,svg} (+ -slowest-order.svg and -failed-order.svg, the waterfalls of two
// orders' traces). Exit 0 when the hypothesis held, 1 when not, 2 on bad usage.
import { parseArgs } from "node:util";
import { ensureMeshTools } from "../../stack/mesh/istiod.js";
import { parseDuration } from "./hypothesis.js";
import { runExperiment } from "./run.js";

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      target: { type: "string", default: "local" },
      rate: { type: "string" },
      duration: { type: "string" },
      address: { type: "string" },
      "mongodb-uri": { type: "string" },
      "traces-dir": { type: "string" },
      out: { type: "string" },
    },
  });
  const [name] = positionals;
  if (!name || positionals.length > 1) throw new UsageError("usage: npm run experiment -- <name> [--target local|cluster|mesh] [--rate N] [--duration 20s]");
  if (values.target !== "local" && values.target !== "cluster" && values.target !== "mesh")
    throw new UsageError(`--target must be local, cluster or mesh, got "${values.target}"`);
  const rate = values.rate === undefined ? undefined : Number(values.rate);
  if (rate !== undefined && !(rate > 0)) throw new UsageError(`--rate must be a positive number, got "${values.rate}"`);
  let durationMs: number | undefined;
  try {
    durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.target === "mesh") ensureMeshTools();
  const { report, files } = await runExperiment({
    name,
    target: values.target,
    rate,
    durationMs,
    address: values.address,
    mongodbUri: values["mongodb-uri"],
    tracesDir: values["traces-dir"],
    reportsDir: values.out,
    progress: true,
  });
  for (const c of [...report.checks, ...report.consistency]) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.check}: ${c.actual} (expected ${c.expected})`);
  console.log(`\n${report.name}: ${report.passed ? "hypothesis held" : "hypothesis NOT held"}; report in ${files?.md}`);
  process.exitCode = report.passed ? 0 : 1;
}

class UsageError extends Error {}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
