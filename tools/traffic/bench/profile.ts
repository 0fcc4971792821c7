// Reads V8 .cpuprofile files (node --cpu-prof) and says where the time went: self time per module and per
// function, as shares of the samples the process was not idle.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT } from "../../root.js";

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples: number[];
}

export interface Hotspot {
  name: string;
  /** Share of the busy samples, in percent. */
  selfPercent: number;
}

export interface ProcessProfile {
  /** Which process: the name in the file name (<name>.<pid>.cpuprofile, from cpu-profile-hook.mjs). */
  process: string;
  busySamples: number;
  modules: Hotspot[];
  functions: Hotspot[];
  /** Shares of the busy samples by layer (GROUPS). */
  layers: Record<string, number>;
}

/** Layers a module belongs to, for a one-line answer to "where does the time go". */
export const GROUPS: Record<string, (module: string) => boolean> = {
  "database driver (mongoose, mongodb, bson)": (m) => ["mongoose", "mongodb", "bson"].includes(m),
  "gRPC and protobuf (@grpc/grpc-js, @connectrpc, @bufbuild)": (m) => m === "@grpc/grpc-js" || m.startsWith("@connectrpc/") || m === "@bufbuild/protobuf",
  "meshmart code (services/*)": (m) => m.startsWith("services/"),
  "garbage collector": (m) => m === "(garbage collector)",
  "logging (pino)": (m) => m.startsWith("pino"),
};

const IDLE = new Set(["(idle)", "(root)"]);

/** A node_modules package, a repository path, a node: internal, or V8's own buckets ("(garbage collector)"). */
export function moduleOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const path = url.replace(/^file:\/\//, "");
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const parts = path.slice(nm + "node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  if (path.startsWith("node:")) return path;
  if (path.startsWith(ROOT)) {
    const rel = relative(ROOT, path);
    const service = /^services\/([^/]+)\//.exec(rel);
    if (service) return `services/${service[1]}`;
    // A compiled service (npm run build bundles the kit and the service into one file).
    const compiled = /^dist\/([^/]+)\.js$/.exec(rel);
    if (compiled) return `services/* (dist/${compiled[1]}.js)`;
    return rel.split("/").slice(0, 2).join("/");
  }
  return path;
}

function top(counts: Map<string, number>, total: number, n: number): Hotspot[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, c]) => ({ name, selfPercent: Math.round((c / total) * 1000) / 10 }));
}

export function summarizeProfile(profile: CpuProfile, label: string, n = 8): ProcessProfile {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const modules = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const [id, count] of hits) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (IDLE.has(functionName)) continue;
    busy += count;
    const mod = moduleOf(url, functionName);
    modules.set(mod, (modules.get(mod) ?? 0) + count);
    const fn = mod === functionName ? mod : `${functionName || "(anonymous)"} ${mod}${url ? `:${lineNumber + 1}` : ""}`;
    functions.set(fn, (functions.get(fn) ?? 0) + count);
  }
  const layers: Record<string, number> = {};
  for (const [layer, has] of Object.entries(GROUPS)) {
    const c = [...modules].filter(([m]) => has(m)).reduce((sum, [, v]) => sum + v, 0);
    layers[layer] = busy ? Math.round((c / busy) * 1000) / 10 : 0;
  }
  return { process: label, busySamples: busy, modules: top(modules, busy, n), functions: top(functions, busy, n), layers };
}

/** Every .cpuprofile in `dir`, summarised; the busiest first. */
export function summarizeProfiles(dir: string, n = 8): ProcessProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => summarizeProfile(JSON.parse(readFileSync(join(dir, f), "utf8")), f.split(".")[0], n))
    .sort((a, b) => b.busySamples - a.busySamples);
}
