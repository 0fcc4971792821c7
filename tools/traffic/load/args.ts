// Command-line values of the load CLI: durations and targets.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../root.js";
import { DEFAULT_PORTS, SERVICE_PORT } from "../../stack/launcher.js";
import { xdsTarget } from "../../stack/mesh/bootstrap.js";
import type { LoadTargets } from "./shopper.js";

const local = (unit: keyof typeof DEFAULT_PORTS) => `127.0.0.1:${DEFAULT_PORTS[unit][0]}`;
/** The stack `npm start` runs on its default ports (and skaffold's port-forwards). */
export const DEFAULT_TARGETS: Required<Omit<LoadTargets, "xdsBootstrap">> = {
  identity: local("identity"),
  catalog: local("catalog-v1"),
  orders: local("orders"),
  payment: local("payment"),
};

/**
 * `--target mesh`: through the local mesh of `npm start -- --mesh`, as its client workload "load" (the
 * bootstrap it wrote to .cache/mesh/load-bootstrap.json).
 */
export function meshTargets(): LoadTargets {
  const file = join(ROOT, ".cache", "mesh", "load-bootstrap.json");
  if (!existsSync(file)) throw new RangeError(`--target mesh: ${file} not found; start the mesh first (npm start -- --mesh)`);
  const xds = (svc: string) => xdsTarget(svc, SERVICE_PORT);
  return { identity: xds("identity"), catalog: xds("catalog"), orders: xds("orders"), payment: xds("payment"), xdsBootstrap: readFileSync(file, "utf8") };
}

/** "10s", "500ms", "2m" or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, name = "duration"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new RangeError(`--${name} must look like 10s, 500ms or 2m, got "${text}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[(m[2] ?? "s") as "ms" | "s" | "m"];
}

/** --targets: {"identity","catalog","orders"[,"payment"]} as host:port, or a `meshmart ready` object. */
export function parseTargets(text: string): LoadTargets {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RangeError(`--targets must be JSON, got ${text}`);
  }
  const addr = (key: string, ...alt: string[]) => {
    for (const k of [key, ...alt]) {
      const x = v[k] as unknown;
      if (typeof x === "string" && x) return x;
      if (x && typeof x === "object" && typeof (x as { grpc?: unknown }).grpc === "string") return (x as { grpc: string }).grpc;
    }
    return undefined;
  };
  const mono = addr("monolith");
  const t = {
    identity: addr("identity") ?? mono,
    catalog: addr("catalog", "catalog-v1") ?? mono,
    orders: addr("orders") ?? mono,
    payment: addr("payment") ?? mono,
  };
  for (const k of ["identity", "catalog", "orders"] as const) if (!t[k]) throw new RangeError(`--targets: no address for ${k}`);
  return t as LoadTargets;
}
