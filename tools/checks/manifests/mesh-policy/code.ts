// The protos (from the generated descriptors in gen/) and the services' code as the mesh checks see it: every
// RPC, who serves which, which need a token, and the call graph (Connect clients made with the kit's `dial`,
// the methods called on them). test/mesh-security.test.ts makes the call graph's calls through real istiod.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { ROOT } from "../../../root.js";

export interface Rpc {
  path: string; // "/meshmart.payment.v1.PaymentService/Charge"
  service: string; // "PaymentService"
  fullService: string; // "meshmart.payment.v1.PaymentService"
  method: string; // "Charge"
  localName: string; // "charge"
}

async function loadRpcs(): Promise<Rpc[]> {
  const out: Rpc[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith("_pb.ts") ? [join(dir, e.name)] : [],
    );
  for (const file of walk(join(ROOT, "gen", "meshmart"))) {
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      const s = value as DescService;
      if (s && typeof s === "object" && s.kind === "service")
        for (const m of s.methods)
          out.push({ path: `/${s.typeName}/${m.name}`, service: s.name, fullService: s.typeName, method: m.name, localName: m.localName });
    }
  }
  return out;
}

/** Every meshmart RPC in proto/, from the generated descriptors (the same ones the services serve). */
export const RPCS: Rpc[] = await loadRpcs();
export const rpcByPath = new Map(RPCS.map((r) => [r.path, r]));
export const servicesByName = new Map<string, Rpc[]>();
for (const r of RPCS) servicesByName.set(r.service, [...(servicesByName.get(r.service) ?? []), r]);

export interface CodeFile {
  file: string; // relative to the code root
  text: string;
}

/** services/<app>/src/*.ts (not the kit), by app. */
export function readCode(codeRoot: string): Map<string, CodeFile[]> {
  const apps = new Map<string, CodeFile[]>();
  const dir = join(codeRoot, "services");
  if (!existsSync(dir)) return apps;
  for (const app of readdirSync(dir).sort()) {
    const src = join(dir, app, "src");
    if (app === "kit" || !existsSync(src)) continue;
    const files = readdirSync(src)
      .filter((f) => f.endsWith(".ts"))
      .sort()
      .map((f) => ({ file: relative(codeRoot, join(src, f)), text: readFileSync(join(src, f), "utf8") }));
    apps.set(app, files);
  }
  return apps;
}

export interface GrpcCall {
  caller: string; // app label
  rpc: Rpc;
  envVar: string; // where the address comes from, e.g. CATALOG_ADDR
  where: string; // code file of the call
}

/**
 * The RPCs each service calls: a client made with a pool's `dial(XService, config.VAR)` and `.method(` calls on it
 * (matched by the method's local name among the dialled services' methods).
 */
export function callGraph(code: Map<string, CodeFile[]>): GrpcCall[] {
  const calls: GrpcCall[] = [];
  for (const [app, files] of code) {
    const dialled = new Map<string, string>(); // service name -> env var
    for (const { text } of files) for (const m of text.matchAll(/\bdial\(\s*(\w+)\s*,\s*config\.(\w+)/g)) dialled.set(m[1], m[2]);
    for (const [service, envVar] of dialled) {
      for (const rpc of servicesByName.get(service) ?? []) {
        const called = files.find(({ text }) => new RegExp(`\\.\\s*${rpc.localName}\\s*\\(`).test(text));
        if (called) calls.push({ caller: app, rpc, envVar, where: called.file });
      }
    }
  }
  return calls;
}

/** The proto services an app serves: `service(XService, ...)` in its sources. */
export function servedBy(code: Map<string, CodeFile[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [app, files] of code)
    out.set(
      app,
      [...new Set(files.flatMap(({ text }) => [...text.matchAll(/\bservice\(\s*(\w+Service)\s*,/g)].map((m) => m[1])))].filter((s) => servicesByName.has(s)),
    );
  return out;
}

/** RPCs whose handler requires a bearer token: services registered with `interceptors: [auth]`, minus `public: [...]`. */
export function tokenRequired(code: Map<string, CodeFile[]>): Set<string> {
  const out = new Set<string>();
  for (const files of code.values()) {
    for (const { text } of files) {
      const open = new Set([...(text.match(/authenticate\(\{[^}]*public:\s*\[([^\]]*)\]/)?.[1].matchAll(/"(\w+)"/g) ?? [])].map((m) => m[1]));
      for (const m of text.matchAll(/\bservice\(\s*(\w+Service)\s*,[^;]*?interceptors:\s*\[\s*auth\s*\]/gs))
        for (const rpc of servicesByName.get(m[1]) ?? []) if (!open.has(rpc.method)) out.add(rpc.path);
    }
  }
  return out;
}
