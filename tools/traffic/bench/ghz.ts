// Benchmark 4: ghz (an outside, Go load tool) drives the same GetProduct load, to cross-check the load
// generator's numbers. It finds the method through the server's reflection.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "../../root.js";
import type { Figures } from "./closed-loop.js";

export const GHZ = join(ROOT, ".cache", "bin", "ghz");

/** The bench's own figures (closed-loop.ts), plus ghz's status codes. */
export type GhzFigures = Omit<Figures, "firstError"> & { codes: Record<string, number> };

interface GhzJson {
  count: number;
  rps: number;
  average: number;
  slowest: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution: Record<string, number>;
}

/** Runs ghz against `address` for `seconds`: closed loop (`concurrency` workers) or, with `rps`, at that rate. */
export async function ghz(o: { address: string; sku: string; seconds: number; concurrency: number; rps?: number }): Promise<GhzFigures> {
  if (!existsSync(GHZ)) throw new Error(`${GHZ} is missing: run tools/setup/setup.sh --all`);
  const args = [
    "--insecure",
    "--call",
    "meshmart.catalog.v1.CatalogService.GetProduct",
    "-d",
    JSON.stringify({ sku: o.sku }),
    "-c",
    String(o.concurrency),
    "-z",
    `${o.seconds}s`,
    "-t",
    "5s", // the same deadline as the load generator's
    "--format",
    "json",
    ...(o.rps ? ["--rps", String(o.rps)] : []),
    o.address,
  ];
  const { stdout } = await promisify(execFile)(GHZ, args, { maxBuffer: 64 * 2 ** 20 });
  const r = JSON.parse(stdout) as GhzJson;
  const ms = (ns: number) => Math.round(ns / 1000) / 1000;
  const at = (p: number) => ms(r.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? 0);
  const ok = r.statusCodeDistribution?.OK ?? 0;
  return {
    calls: r.count,
    errors: r.count - ok,
    rps: Math.round(r.rps),
    p50ms: at(50),
    p90ms: at(90),
    p99ms: at(99),
    maxms: ms(r.slowest),
    meanms: ms(r.average),
    codes: r.statusCodeDistribution ?? {},
  };
}
