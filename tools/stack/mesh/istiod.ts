// Runs the real Istio control plane (istiod = pilot-discovery, built by `tools/setup/setup.sh --mesh`) without
// Kubernetes: its config comes from a directory of YAML (tools/stack/mesh/config.ts writes it), which it watches and
// re-reads on every change, pushing xDS to the proxyless gRPC processes connected to it.
//
// API (the sec and kube helpers build on it; keep it stable):
//   ensureMeshTools()                                                          setup.sh --mesh (builds if needed)
//   startIstiod({ configDir, ports?, env?, registryArgs?, log? }): Promise<Istiod>  free ports, waits until it serves
//   Istiod: xdsAddress ("127.0.0.1:port", plaintext xDS), httpUrl (debug endpoints), pid, output(),
//           configz(), syncz(), waitForConfig(objs), waitForPush(since), kill(signal), restart(), stop(),
//           onExit(fn)
//   istiodAt(httpUrl): configz(), syncz(), waitForPush(): the debug view of an istiod started elsewhere
//   `registryArgs` replaces the file-registry flags (--registries= --configDir=) for Kubernetes mode.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Obj } from "../../checks/manifests/types.js";
import { ROOT } from "../../root.js";
import { freePort } from "../devdb.js";
import { accepts, checkBindable } from "../port-check.js";
import { objectKey, REVISION_ANNOTATION } from "./config.js";

export interface IstiodPorts {
  grpc: number;
  http: number;
  monitoring: number;
  ctrlz: number;
}

export interface IstiodOptions {
  /** The config directory (file registry). Required unless `args` gives another registry. */
  configDir?: string;
  /** Fixed ports; free ones when omitted. */
  ports?: Partial<IstiodPorts>;
  /** Extra environment (e.g. for Kubernetes mode: KUBECONFIG). */
  env?: Record<string, string>;
  /** Replaces the registry flags (default: --registries= --configDir=<configDir>). */
  registryArgs?: string[];
  /** Each line of istiod's output. */
  log?: (line: string) => void;
  readyTimeoutMs?: number;
}

export interface SyncStatus {
  proxy: string;
  resources?: Record<string, { sent?: string; acked?: string; sentTime?: string; lastError?: string }>;
  [k: string]: unknown;
}

export interface Istiod {
  xdsAddress: string;
  httpUrl: string;
  ports: IstiodPorts;
  pid(): number | undefined;
  running(): boolean;
  output(): string;
  /** Every config object istiod holds (GET /debug/configz). */
  configz(): Promise<Obj[]>;
  /** Every connected xDS client and what it was sent and acknowledged (GET /debug/syncz). */
  syncz(): Promise<SyncStatus[]>;
  /**
   * Resolves once istiod holds each object (by kind/namespace/name) at its revision annotation (as
   * MeshConfigDir wrote it), and none of `gone`.
   */
  waitForConfig(objs: Obj[], gone?: Obj[], timeoutMs?: number): Promise<void>;
  /**
   * Resolves once each of `proxies` (node ids; every connected one when omitted) was sent xDS after `since`
   * (epoch ms) and acknowledged all of it: the config istiod holds now is what they use.
   */
  waitForPush(since: number, proxies?: string[], timeoutMs?: number): Promise<void>;
  /** Sends a signal (SIGKILL by default) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports and waits until it serves. */
  restart(): Promise<void>;
  onExit(fn: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  stop(): Promise<void>;
}

const OUTPUT_KEEP = 64 * 1024;

/**
 * Builds istiod and istioctl into .cache/bin when missing or stale (tools/setup/setup.sh --mesh: several minutes of
 * Go the first time, nothing after). For the entry points that start a mesh (npm start -- --mesh, the load
 * and experiment CLIs); plain `npm start` never needs them.
 */
export function ensureMeshTools(): void {
  execFileSync(join(ROOT, "tools", "setup", "setup.sh"), ["--mesh"], { stdio: ["ignore", "inherit", "inherit"] });
}

export function pilotDiscoveryBinary(): string {
  const bin = process.env.PILOT_DISCOVERY ?? join(ROOT, ".cache", "bin", "pilot-discovery");
  if (!existsSync(bin)) throw new Error(`mesh: ${bin} not found; run tools/setup/setup.sh --mesh (it builds istiod from istio.io/istio with Go)`);
  return bin;
}

const sleepTick = () => new Promise((r) => setTimeout(r, 50)); // polling interval of the waits below

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}

export async function startIstiod(opts: IstiodOptions): Promise<Istiod> {
  const bin = pilotDiscoveryBinary();
  const ports: IstiodPorts = {
    grpc: opts.ports?.grpc ?? (await freePort()),
    http: opts.ports?.http ?? (await freePort()),
    monitoring: opts.ports?.monitoring ?? (await freePort()),
    ctrlz: opts.ports?.ctrlz ?? (await freePort()),
  };
  const registry = opts.registryArgs ?? ["--registries=", `--configDir=${opts.configDir}`];
  if (!opts.registryArgs && !opts.configDir) throw new Error("startIstiod: configDir is required for the file registry");
  const args = [
    "discovery",
    ...registry,
    `--grpcAddr=127.0.0.1:${ports.grpc}`,
    "--secureGRPCAddr=",
    "--httpsAddr=",
    `--httpAddr=127.0.0.1:${ports.http}`,
    `--monitoringAddr=127.0.0.1:${ports.monitoring}`,
    `--ctrlz_port=${ports.ctrlz}`,
    "--domain=cluster.local",
    "--clusterID=Kubernetes",
  ];
  const httpUrl = `http://127.0.0.1:${ports.http}`;
  let out = "";
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let expected = false;
  let stopped = false;
  const exitHandlers: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = [];

  const launch = async () => {
    expected = false;
    // istiod only logs a port it cannot bind and keeps running: check them first, for an error that names the port.
    for (const [what, port] of Object.entries(ports)) await checkBindable("127.0.0.1", port, `istiod's ${what} port`);
    const c = spawn(bin, args, {
      env: { ...process.env, ENABLE_CA_SERVER: "false", POD_NAMESPACE: "istio-system", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    const onData = (d: Buffer) => {
      const s = d.toString();
      out = (out + s).slice(-OUTPUT_KEEP);
      if (opts.log) for (const line of s.split("\n")) if (line) opts.log(line);
    };
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    exited = once(c, "exit").then(() => undefined);
    c.once("exit", (code, signal) => {
      if (!expected && !stopped) for (const fn of exitHandlers) fn(code, signal);
    });
    const died = exited.then(() => {
      throw new Error(`istiod exited during startup:\n${explain(out)}`);
    });
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    const ready = (async () => {
      while (Date.now() < deadline && c.exitCode === null) {
        // Its /ready waits for the sidecar injector and validation webhooks, which do not run without
        // Kubernetes: ready here is the xDS port accepting connections and the config loaded (debug endpoint up).
        try {
          const res = await fetch(`${httpUrl}/debug/configz`, { signal: AbortSignal.timeout(1000) });
          if (res.ok && (await accepts(ports.grpc))) return;
        } catch {
          // not listening yet
        }
        await sleepTick();
      }
      if (c.exitCode === null) throw new Error(`istiod was not ready within ${opts.readyTimeoutMs ?? 60_000} ms:\n${out.slice(-3000)}`);
    })();
    try {
      await Promise.race([ready, died]);
    } finally {
      died.catch(() => undefined);
    }
  };

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    expected = true;
    child.kill(signal);
    const force = setTimeout(() => child?.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(force);
  };

  const debug = istiodAt(httpUrl);
  const istiod: Istiod = {
    xdsAddress: `127.0.0.1:${ports.grpc}`,
    httpUrl,
    ports,
    pid: () => child?.pid,
    running: () => !!child && child.exitCode === null && child.signalCode === null,
    output: () => out,
    ...debug,
    async waitForConfig(objs, gone = [], timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      const keyOf = (c: Obj) => `${c.kind}/${c.metadata?.namespace}/${c.metadata?.name}`;
      for (;;) {
        const held = new Map((await istiod.configz()).map((c) => [keyOf(c), c]));
        const rev = (o: Obj | undefined) => o?.metadata?.annotations?.[REVISION_ANNOTATION];
        const missing = objs.filter((o) => rev(held.get(objectKey(o))) !== rev(o)).map(objectKey);
        const still = gone.filter((o) => held.has(objectKey(o))).map(objectKey);
        if (missing.length === 0 && still.length === 0) return;
        if (Date.now() > deadline)
          throw new Error(
            `istiod did not take the config within ${timeoutMs} ms (${[...missing.map((k) => `${k} not as written`), ...still.map((k) => `${k} still there`)].join(", ")}); its log:\n${explain(out)}`,
          );
        await sleepTick();
      }
    },
    kill,
    async restart() {
      await kill("SIGKILL");
      await launch();
    },
    onExit(fn) {
      exitHandlers.push(fn);
    },
    async stop() {
      stopped = true;
      await kill("SIGTERM");
    },
  };
  try {
    await launch();
  } catch (err) {
    await istiod.stop();
    throw err;
  }
  return istiod;
}

/** What istiod's debug endpoints tell about the istiod serving HTTP at `httpUrl` (one started elsewhere, too). */
export type IstiodDebug = Pick<Istiod, "configz" | "syncz" | "waitForPush">;

export function istiodAt(httpUrl: string): IstiodDebug {
  const debug: IstiodDebug = {
    async configz() {
      return getJson<Obj[]>(`${httpUrl}/debug/configz`);
    },
    async syncz() {
      return getJson<SyncStatus[]>(`${httpUrl}/debug/syncz`);
    },
    async waitForPush(since, proxies, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const status = await debug.syncz();
        const wanted = proxies ?? status.map((s) => s.proxy);
        const behind = wanted.filter((p) => {
          const s = status.find((x) => x.proxy === p);
          const res = Object.values(s?.resources ?? {});
          const pushed = res.some((r) => r.sentTime && Date.parse(r.sentTime) >= since);
          return !s || !pushed || res.some((r) => r.sent !== r.acked);
        });
        if (behind.length === 0) return;
        if (Date.now() > deadline) throw new Error(`istiod's push after the config change was not acknowledged within ${timeoutMs} ms by ${behind.join(", ")}`);
        await sleepTick();
      }
    },
  };
  return debug;
}

/** The lines of istiod's output that say why it stopped (its log is long; errors and fatal lines first). */
function explain(out: string): string {
  const lines = out.split("\n").filter(Boolean);
  const bad = lines.filter((l) => /\b(error|fatal|Failed|panic)\b/i.test(l));
  return (bad.length > 0 ? bad.slice(-10) : lines.slice(-15)).join("\n");
}
