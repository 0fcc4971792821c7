// The local stack as a library: the embedded database and every service (catalog as v1 and v2) as child
// processes, with handles to kill, restart and fault one of them. tools/stack/start.ts (npm start), the experiment
// runner and the fault tests all start meshmart through here, so they run the same thing.
// With `mesh`, the same processes run in a local Istio mesh: real istiod (tools/stack/mesh/istiod.ts) fed from the
// kustomize-rendered manifests (tools/stack/mesh/config.ts), each process with an address of its own and an xDS
// bootstrap (tools/stack/mesh/bootstrap.ts), orders calling catalog and payment as a proxyless gRPC client.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FaultSettings } from "#kit";
import { ordersPeerEnv } from "../../services/orders/src/peers.js";
import type { Manifest } from "../checks/manifests/types.js";
import { DIST, SERVICE_NODE_FLAGS } from "../setup/entries.js";
import { type DevDb, freePort, ROOT, startDevDb } from "./devdb.js";
import { waitForHealth } from "./health-wait.js";
import type { ControlPlane, ControlPlaneOptions, KubePart } from "./kube/control-plane.js";
import { type KubeApplied, type KubeMesh, startKubeMesh } from "./kube/mesh.js";
import { type Bootstrap, bootstrapEnv, bootstrapFor, type Workload, xdsTarget } from "./mesh/bootstrap.js";
import { type Applied, type LeftOut, MeshConfigDir, renderMeshConfig, validateMeshDocs } from "./mesh/config.js";
import { checkBindable, type Istiod, startIstiod } from "./mesh/istiod.js";
import { addressBlock, INGRESS_IDENTITY, MESH_SERVICE_ENV, MeshSecurity, serviceAccount } from "./mesh/security.js";

export { checkBindable };

export const UNITS = ["identity", "catalog-v1", "catalog-v2", "orders", "payment"] as const;
export type UnitName = (typeof UNITS)[number];
/**
 * Where each unit answers. In the mesh, `grpc` is its mesh address (mTLS only, as callers in the mesh reach it)
 * and `local` the plaintext health + reflection port outside the mesh (what health waits and grpcurl use).
 */
export type Endpoints = Record<UnitName, { grpc: string; admin: string; local?: string }>;

export interface StackOptions {
  /** "auto": free ports everywhere (tests); "default": DEFAULT_PORTS below. */
  ports?: "auto" | "default";
  /** Use this server instead of starting the embedded one (stopDb/startDb are then unavailable). */
  mongoUri?: string;
  /** The embedded database's files; a temporary directory (removed by stop) when omitted. */
  dataDir?: string;
  /** "inherit" shows the services' logs (npm start); "pipe" keeps the last lines for output() (tests). */
  stdio?: "inherit" | "pipe";
  logLevel?: string;
  logFormat?: "json" | "pretty";
  /** orders' recovery loop: short values let tests see stuck orders finished within seconds. */
  recovery?: { intervalMs: number; afterMs: number };
  /**
   * Tracing: each unit writes its spans to `<dir>/<unit>.jsonl` (OTLP/JSON lines, read by tools/traffic/trace), sampled
   * per `sampler`/`ratio` (OTEL_TRACES_SAMPLER/_ARG; default every trace). Off when omitted.
   */
  traces?: { dir: string; sampler?: string; ratio?: number };
  /** Extra environment per unit (e.g. FAULT_* knobs at start). */
  env?: Partial<Record<UnitName, Record<string, string>>>;
  /** A unit exited without being asked to (crash): start.ts stops everything, tests record it. */
  onUnexpectedExit?: (unit: UnitName, code: number | null, signal: NodeJS.Signals | null) => void;
  healthTimeoutMs?: number;
  /** Run the services in the local mesh (real istiod, proxyless gRPC). */
  mesh?: MeshOptions;
}

export interface MeshClient {
  name: string;
  /** A ServiceAccount of the meshmart namespace; the ingress gateway's identity when omitted. */
  serviceAccount?: string;
}

export interface MeshOptions {
  /** The mesh kustomization istiod gets; default "mesh" (the base policy); "mesh/canary": the 90/10 split. */
  kustomization?: string;
  /** A project copy whose manifests are rendered (tests point it at a scratch copy); default this repository. */
  root?: string;
  /**
   * Client workloads besides the services (a WorkloadEntry and a certificate each; bootstrap(name) gives theirs).
   * A name alone stands for an outside caller and gets the ingress gateway's identity (tools/stack/mesh/security.ts);
   * `serviceAccount` gives another one (meshmart namespace). Default: "load".
   */
  clients?: (string | MeshClient)[];
  /** Workload certificate lifetime (renewed at half of it); default 1 h. */
  certTtlMs?: number;
  /** How often each process re-reads its certificate files; default 5 s. */
  certRefreshMs?: number;
  /** Each line of istiod's log (default: kept for output() only). */
  log?: (line: string) => void;
  /** istiod exited without being asked to (the services keep their last config). */
  onIstiodExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
  /**
   * Run it on a local Kubernetes control plane instead of a config directory (tools/stack/kube/): the manifests
   * applied with kubectl, a WorkloadEntry per process, istiod in its Kubernetes mode.
   */
  kube?: {
    /** Use this control plane (tests share one); else one is started in `dir` and stopped with the stack. */
    controlPlane?: ControlPlane;
    ports?: ControlPlaneOptions["ports"];
    dir?: string;
    /** etcd or the API server exited (istiod and the services keep serving their last config). */
    onExit?: (part: KubePart, code: number | null, signal: NodeJS.Signals | null) => void;
  };
}

/** What Mesh.apply answers, for Mesh.revert: a config-directory change, or a kubectl one (kube mode). */
export type MeshApplied = Applied | KubeApplied;

/** The local mesh of a stack started with `mesh`. */
export interface Mesh {
  istiod: Istiod;
  /** istiod's config directory (undefined in kube mode: istiod reads the API server). */
  config?: MeshConfigDir;
  /** The local control plane and istiod in Kubernetes mode (kube mode only). */
  kube?: KubeMesh;
  /** What was not given to istiod, and why. */
  leftOut: LeftOut[];
  /** Each unit's workload (address, pod name, service account). */
  workloads: Record<UnitName, Workload>;
  /** xds targets of the services, as a client in the mesh dials them. */
  targets: { identity: string; catalog: string; orders: string; payment: string };
  /** The bootstrap of a client workload named in MeshOptions.clients (with its certificate provider). */
  bootstrap(client: string): Bootstrap;
  /** The workload identities: the local CA, every certificate, renew(). */
  security: MeshSecurity;
  /** Validates, writes into istiod's directory (replacing by name), and waits until istiod pushed it and every client acknowledged. */
  apply(docs: Manifest[]): Promise<MeshApplied>;
  /** Puts back what apply replaced, and waits the same way. */
  revert(applied: MeshApplied): Promise<void>;
}

export interface Stack {
  endpoints: Endpoints;
  /** Set when started with `mesh`. */
  mesh?: Mesh;
  mongoUri: string;
  /** The embedded database's directory (undefined with an outside mongoUri). */
  dataDir?: string;
  /** Where the units write their spans (StackOptions.traces), if tracing is on. */
  tracesDir?: string;
  /** `meshmart ready` JSON shape: endpoints plus the database URI. */
  ready(): Endpoints & { mongodb: string };
  /** Sends `signal` (SIGKILL by default) and waits for the process to exit; it stays down until start/restart. */
  kill(unit: UnitName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a unit that is down, on its old ports, and waits until it is SERVING. */
  start(unit: UnitName): Promise<void>;
  /** Graceful restart: SIGTERM (the kit drains in-flight calls), then a new process on the same ports, health-waited. */
  restart(unit: UnitName): Promise<void>;
  /**
   * Mesh only: the restart a Deployment's rolling update does (maxSurge 1, maxUnavailable 0). A new process on
   * an address of its own with a WorkloadEntry of its own (istiod pushed it, every client acknowledged), waited
   * until SERVING; then the old process gets SIGTERM while its endpoint is being taken out, as kubelet and the
   * endpoints controller race on a cluster: callers that still pick it are refused, and the VirtualServices'
   * retries send them on. The unit's endpoints then name the new process.
   */
  rollOver(unit: UnitName): Promise<void>;
  isRunning(unit: UnitName): boolean;
  pid(unit: UnitName): number | undefined;
  stopDb(): Promise<void>;
  startDb(): Promise<void>;
  /** Sets the kit's fault knobs of one unit through its admin `PUT /faults`. */
  setFaults(unit: UnitName, settings: Partial<FaultSettings>): Promise<FaultSettings>;
  /** The unit's recent output (stdio "pipe" only). */
  output(unit: UnitName): string;
  /** The embedded database's recent log lines. */
  dbOutput(): string;
  /** Stops every process and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** rollOver's minReadySeconds (ms): above the kit's 1 s reconnect backoff cap (services/kit/src/grpc-transport.ts). */
export const MIN_READY_MS = 1500;

/** gRPC and admin ports per unit on `npm start`; skaffold forwards the same gRPC ports. */
export const DEFAULT_PORTS: Record<UnitName, [number, number]> = {
  identity: [50051, 9091],
  "catalog-v1": [50052, 9092],
  "catalog-v2": [50055, 9095],
  orders: [50053, 9093],
  payment: [50054, 9094],
};
/** The compiled service each unit runs (npm run build; mocha's global setup builds before any test). */
const ENTRY: Record<UnitName, string> = {
  identity: join(DIST, "identity.js"),
  "catalog-v1": join(DIST, "catalog.js"),
  "catalog-v2": join(DIST, "catalog.js"),
  orders: join(DIST, "orders.js"),
  payment: join(DIST, "payment.js"),
};
const OUTPUT_KEEP = 64 * 1024; // bytes of output kept per unit for failure messages
/** The Deployment (in services/<svc>/k8s) each unit is an instance of. */
export const DEPLOYMENT: Record<UnitName, string> = {
  identity: "identity-v1",
  "catalog-v1": "catalog-v1",
  "catalog-v2": "catalog-v2",
  orders: "orders-v1",
  payment: "payment-v1",
};
/** The gRPC port of every meshmart Service (services/<svc>/k8s/service.yaml): what mesh clients dial. */
export const SERVICE_PORT = 50051;

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  expected: boolean;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const auto = (opts.ports ?? "auto") === "auto";
  const ports = {} as Record<UnitName, { port: number; adminPort: number }>;
  for (const u of UNITS)
    ports[u] = auto ? { port: await freePort(), adminPort: await freePort() } : { port: DEFAULT_PORTS[u][0], adminPort: DEFAULT_PORTS[u][1] };
  // In the mesh every process has an address of its own (istiod tells workloads apart by IP) and serves the
  // container port of the manifests there, like a pod; the plaintext local port takes the unit's usual port.
  const address = addressBlock(auto);
  const hostOf = Object.fromEntries(UNITS.map((u, i) => [u, opts.mesh ? address(i) : "127.0.0.1"])) as Record<UnitName, string>;
  const localPorts = {} as Record<UnitName, number>;
  if (opts.mesh)
    for (const u of UNITS) {
      localPorts[u] = ports[u].port;
      ports[u].port = SERVICE_PORT;
    }
  const endpoints = Object.fromEntries(
    UNITS.map((u) => [
      u,
      {
        grpc: `${hostOf[u]}:${ports[u].port}`,
        admin: `http://${hostOf[u]}:${ports[u].adminPort}`,
        ...(opts.mesh ? { local: `127.0.0.1:${localPorts[u]}` } : {}),
      },
    ]),
  ) as Endpoints;
  if (opts.mesh)
    for (const u of UNITS) {
      await checkBindable(hostOf[u], ports[u].port, `${u}'s mesh gRPC port`);
      await checkBindable("127.0.0.1", localPorts[u], `${u}'s local gRPC port`);
      await checkBindable(hostOf[u], ports[u].adminPort, `${u}'s admin port`);
    }

  // The mesh first: an invalid mesh file stops the start before anything else runs.
  const meshDir = opts.mesh ? (opts.dataDir ? join(opts.dataDir, "mesh") : mkdtempSync(join(tmpdir(), "meshmart-mesh-"))) : undefined;
  const mesh = opts.mesh ? await startMesh(opts.mesh, hostOf, ports, address, meshDir as string, opts.dataDir === undefined) : undefined;

  let dbLog = "";
  const tempDir = opts.mongoUri || opts.dataDir ? undefined : mkdtempSync(join(tmpdir(), "meshmart-stack-"));
  let db: DevDb | undefined;
  let mongoUri = opts.mongoUri;
  if (!mongoUri) {
    const port = auto ? await freePort() : 27017;
    db = await startDevDb({ dir: (opts.dataDir ?? tempDir) as string, port, log: (line) => (dbLog = `${dbLog}${line}\n`.slice(-OUTPUT_KEEP)) }).catch(
      async (err) => {
        if (tempDir) rmSync(tempDir, { recursive: true, force: true });
        await mesh?.stop();
        throw new Error(`${err.message}\n(is something else on port ${port}? set MONGODB_URI to use it instead)`);
      },
    );
    mongoUri = db.uri;
  }
  const uri = mongoUri;

  const envOf = (u: UnitName): Record<string, string> => {
    const base: Record<string, string> = {
      PORT: String(ports[u].port),
      ADMIN_PORT: String(ports[u].adminPort),
      HOST: "127.0.0.1",
      MONGODB_URI: uri,
      LOG_FORMAT: opts.logFormat ?? process.env.LOG_FORMAT ?? "json",
      LOG_LEVEL: opts.logLevel ?? process.env.LOG_LEVEL ?? "info",
    };
    if (mesh) {
      base.HOST = hostOf[u];
      base.LOCAL_GRPC_PORT = String(localPorts[u]);
      Object.assign(base, MESH_SERVICE_ENV, bootstrapEnv(mesh.workloads[u], mesh.istiod.xdsAddress, mesh.serviceExtras[u]));
    }
    if (u.startsWith("catalog")) base.VERSION = u.slice("catalog-".length);
    if (opts.traces) {
      base.TRACES_FILE = join(opts.traces.dir, `${u}.jsonl`);
      base.OTEL_BSP_SCHEDULE_DELAY = "1000"; // files the tools read a second after the call, not five
      if (opts.traces.sampler) base.OTEL_TRACES_SAMPLER = opts.traces.sampler;
      if (opts.traces.ratio !== undefined) base.OTEL_TRACES_SAMPLER_ARG = String(opts.traces.ratio);
    }
    if (u === "orders") {
      // In the mesh, orders asks istiod where catalog and payment are (routes, subsets, retries, faults).
      Object.assign(
        base,
        ordersPeerEnv({
          catalog: mesh ? mesh.targets.catalog : endpoints["catalog-v1"].grpc,
          payment: mesh ? mesh.targets.payment : endpoints.payment.grpc,
          identityAdmin: endpoints.identity.admin,
        }),
      );
      if (opts.recovery) {
        base.RECOVERY_INTERVAL_MS = String(opts.recovery.intervalMs);
        base.RECOVERY_AFTER_MS = String(opts.recovery.afterMs);
      }
    }
    if (u === "payment" && opts.recovery) {
      // The ledger's reconcile on the same short clock as orders' recovery (a full scan: not every 500 ms).
      base.RECONCILE_INTERVAL_MS = String(Math.max(opts.recovery.intervalMs, 1000));
      base.RECONCILE_AFTER_MS = String(opts.recovery.afterMs);
    }
    return { ...base, ...opts.env?.[u] };
  };

  const running = new Map<UnitName, Running>();
  /** Old processes of a rollOver still draining (stop() waits for them too). */
  const draining = new Set<Running>();
  /** Addresses for rolled-over processes: after the units' and the clients'. */
  let nextAddress = UNITS.length + (opts.mesh?.clients?.length ?? 1) + 10;
  /** Each unit's WorkloadEntry name once rolled over (initially the unit's name). */
  const entryName = new Map<UnitName, string>();
  const outputs = new Map<UnitName, string>();
  let stopping = false;

  function launch(u: UnitName) {
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ENTRY[u]], {
      cwd: ROOT,
      env: { ...process.env, ...envOf(u) },
      stdio: ["ignore", opts.stdio === "inherit" ? "inherit" : "pipe", opts.stdio === "inherit" ? "inherit" : "pipe"],
    });
    const keep = (d: Buffer) => {
      const s = (outputs.get(u) ?? "") + d;
      outputs.set(u, s.length > OUTPUT_KEEP ? s.slice(-OUTPUT_KEEP) : s);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const entry: Running = { child, expected: false, exited: once(child, "exit").then(() => undefined) };
    child.once("exit", (code, signal) => {
      if (running.get(u) === entry) running.delete(u);
      if (!entry.expected && !stopping) opts.onUnexpectedExit?.(u, code, signal);
    });
    running.set(u, entry);
    return entry;
  }

  async function startUnit(u: UnitName) {
    if (stopping) throw new Error(`start ${u}: the stack is stopped`); // never leave an orphan behind stop()
    if (running.has(u)) return;
    const entry = launch(u);
    const died = entry.exited.then(() => {
      throw new Error(`${u} exited during startup:\n${outputs.get(u)?.slice(-3000) ?? ""}`);
    });
    await Promise.race([
      waitForHealth(endpoints[u].local ?? endpoints[u].grpc, { timeoutMs: opts.healthTimeoutMs ?? 60_000 }).catch((err: Error) => {
        throw new Error(`${u}: ${err.message}\n${outputs.get(u)?.slice(-3000) ?? ""}`);
      }),
      died,
    ]);
    died.catch(() => undefined); // it may exit later, on purpose; startup is over
  }

  async function killUnit(u: UnitName, signal: NodeJS.Signals = "SIGKILL") {
    const r = running.get(u);
    if (!r) return;
    r.expected = true;
    r.child.kill(signal);
    // A graceful stop drains within the kit's grace period; past that, something is wrong: force it.
    const force = setTimeout(() => r.child.kill("SIGKILL"), 30_000);
    await r.exited;
    clearTimeout(force);
  }

  const stack: Stack = {
    endpoints,
    mesh,
    mongoUri: uri,
    dataDir: db?.dir,
    tracesDir: opts.traces?.dir,
    ready: () => ({ ...endpoints, mongodb: uri }),
    kill: killUnit,
    start: startUnit,
    async restart(u) {
      await killUnit(u, "SIGTERM");
      await startUnit(u);
    },
    async rollOver(u) {
      const dir = mesh?.config;
      if (!mesh || !dir) throw new Error("rollOver: needs a stack started with mesh (its config-directory mode)");
      const old = running.get(u);
      if (!old) throw new Error(`rollOver ${u}: it is not running`);
      const current = entryName.get(u) ?? u;
      const entry = dir.docs().find((d) => d.obj.kind === "WorkloadEntry" && d.obj.metadata?.name === current);
      if (!entry) throw new Error(`rollOver ${u}: no WorkloadEntry ${current} in the mesh config`);
      const host = address(nextAddress++);
      await checkBindable(host, ports[u].port, `${u}'s new mesh gRPC port`);
      await checkBindable(host, ports[u].adminPort, `${u}'s new admin port`);
      const local = await freePort();
      hostOf[u] = host;
      localPorts[u] = local;
      mesh.workloads[u].address = host;
      Object.assign(endpoints[u], { grpc: `${host}:${ports[u].port}`, admin: `http://${host}:${ports[u].adminPort}`, local: `127.0.0.1:${local}` });
      // The old process leaves `running` (so startUnit starts the new one) but is still stopped by stop().
      draining.add(old);
      running.delete(u);
      // The new instance's entry has a name of its own (two entries with one address would be a duplicate
      // endpoint, which gRPC clients refuse); the old entry is then removed, as its pod would be.
      const name = `${u}-${nextAddress}`;
      const fresh = { file: entry.file, obj: { ...entry.obj, metadata: { ...entry.obj.metadata, name }, spec: { ...entry.obj.spec, address: host } } };
      try {
        // Like a new pod: it exists (its WorkloadEntry, from which istiod makes its inbound listener) while it
        // starts; callers' round robin only picks it once it accepts calls. It serves once istiod pushed that.
        const starting = startUnit(u);
        starting.catch(() => undefined); // awaited below
        await mesh.apply([fresh]);
        entryName.set(u, name);
        await starting;
        // A Deployment's minReadySeconds: the new process must have been ready a while before the old one goes,
        // here longer than a caller's reconnect backoff (the kit caps it at 1 s), so every caller that tried the
        // new address before it served has connected to it again by then.
        await new Promise((r) => setTimeout(r, MIN_READY_MS));
        old.expected = true;
        old.child.kill("SIGTERM");
        // Removing the old entry: what `revert` does to an object `apply` had added.
        await mesh.revert({ before: new Map([[dir.fileOf(entry.obj), null]]), written: [] });
      } finally {
        old.expected = true;
        old.child.kill("SIGTERM");
        const force = setTimeout(() => old.child.kill("SIGKILL"), 30_000);
        await old.exited;
        clearTimeout(force);
        draining.delete(old);
      }
    },
    isRunning: (u) => running.has(u),
    pid: (u) => running.get(u)?.child.pid,
    async stopDb() {
      if (!db) throw new Error("stopDb: this stack uses an outside database (mongoUri), not the embedded one");
      await db.stop();
    },
    async startDb() {
      if (!db) throw new Error("startDb: this stack uses an outside database (mongoUri), not the embedded one");
      if (stopping) throw new Error("startDb: the stack is stopped");
      await db.start();
    },
    async setFaults(u, settings) {
      const res = await fetch(`${endpoints[u].admin}/faults`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(settings),
        signal: AbortSignal.timeout(5000),
      });
      const body = (await res.json()) as FaultSettings & { error?: string };
      if (!res.ok) throw new Error(`PUT /faults on ${u}: ${res.status} ${body.error ?? ""}`);
      return body;
    },
    output: (u) => outputs.get(u) ?? "",
    dbOutput: () => dbLog,
    async stop() {
      if (stopping) return;
      stopping = true;
      await Promise.all([...running.keys()].reverse().map((u) => killUnit(u, "SIGTERM")));
      await Promise.all(
        [...draining].map((r) => {
          r.child.kill("SIGKILL");
          return r.exited;
        }),
      );
      await mesh?.stop();
      await db?.stop();
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    },
  };

  try {
    // catalog v1 seeds first (v2 shares its database); orders needs identity's JWKS and both peers.
    for (const wave of [
      ["identity", "catalog-v1", "payment"],
      ["catalog-v2", "orders"],
    ] as UnitName[][]) {
      await Promise.all(wave.map(startUnit));
    }
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

/** Renders and validates the mesh config, writes istiod's directory and starts istiod. */
async function startMesh(
  o: MeshOptions,
  hostOf: Record<UnitName, string>,
  ports: Record<UnitName, { port: number; adminPort: number }>,
  address: (n: number) => string,
  dir: string,
  temporary: boolean,
): Promise<Mesh & { serviceExtras: Record<UnitName, Record<string, unknown>>; stop(): Promise<void> }> {
  const workloads = Object.fromEntries(
    UNITS.map((u) => [u, { address: hostOf[u], name: u, serviceAccount: u.startsWith("catalog") ? "catalog" : u }]),
  ) as Record<UnitName, Workload>;
  const clientList = (o.clients ?? ["load"]).map((c) => (typeof c === "string" ? { name: c } : c));
  const clientIds = new Map(clientList.map((c) => [c.name, c.serviceAccount ? serviceAccount(c.serviceAccount) : INGRESS_IDENTITY]));
  // A WorkloadEntry names a ServiceAccount of its own namespace: only meshmart's are written (the certificate is what counts).
  const clients = clientList.map((c, i) => ({ address: address(UNITS.length + i), name: c.name, serviceAccount: c.serviceAccount }));
  const security = await MeshSecurity.open(dir, { certTtlMs: o.certTtlMs, refreshMs: o.certRefreshMs, log: o.log });
  const serviceExtras = {} as Record<UnitName, Record<string, unknown>>;
  for (const u of UNITS) serviceExtras[u] = await security.bootstrapExtra(serviceAccount(workloads[u].serviceAccount as string));
  const clientExtras = new Map<string, Record<string, unknown>>();
  for (const [name, id] of clientIds) clientExtras.set(name, await security.bootstrapExtra(id));
  const dropSecurity = () => {
    security.stop();
    if (temporary) rmSync(dir, { recursive: true, force: true });
  };
  if (o.kube) return startKubeModeMesh(o, hostOf, ports, workloads, clients, { security, serviceExtras, clientExtras, dropSecurity });
  const rendered = renderMeshConfig({
    root: o.root,
    mesh: o.kustomization,
    instances: UNITS.map((u) => ({
      deployment: DEPLOYMENT[u],
      name: u,
      address: hostOf[u],
      ports: { grpc: ports[u].port, "http-metrics": ports[u].adminPort },
    })),
    clients,
  });
  const problems = await validateMeshDocs(rendered.docs);
  if (problems.length > 0)
    throw new Error(`the mesh config is invalid (istiod would refuse it):\n${problems.map((p) => `  ${p.file}: ${p.message}`).join("\n")}`);
  const config = new MeshConfigDir(mkdtempSync(join(tmpdir(), "meshmart-istiod-")));
  config.write(rendered.docs);
  const istiod = await startIstiod({ configDir: config.dir, log: o.log }).catch((err: Error) => {
    rmSync(config.dir, { recursive: true, force: true });
    dropSecurity();
    throw new Error(`${err.message}\n(config directory ${config.dir}, from ${[...new Set(rendered.docs.map((d) => d.file))].join(", ")})`);
  });
  if (o.onIstiodExit) istiod.onExit(o.onIstiodExit);
  const settle = async (since: number, written: Manifest["obj"][], removed: Manifest["obj"][] = []) => {
    await istiod.waitForConfig(written, removed);
    await istiod.waitForPush(since);
  };
  return {
    istiod,
    config,
    leftOut: rendered.leftOut,
    workloads,
    targets: {
      identity: xdsTarget("identity", SERVICE_PORT),
      catalog: xdsTarget("catalog", SERVICE_PORT),
      orders: xdsTarget("orders", SERVICE_PORT),
      payment: xdsTarget("payment", SERVICE_PORT),
    },
    bootstrap(name) {
      const w = clients.find((c) => c.name === name);
      if (!w) throw new Error(`mesh: no client workload named ${name} (MeshOptions.clients: ${clients.map((c) => c.name).join(", ")})`);
      return bootstrapFor(w, istiod.xdsAddress, clientExtras.get(name));
    },
    security,
    serviceExtras,
    async stop() {
      await istiod.stop();
      rmSync(config.dir, { recursive: true, force: true });
      dropSecurity();
    },
    async apply(docs) {
      const problems = await validateMeshDocs(docs);
      if (problems.length > 0) throw new Error(`refused (istiod would reject it):\n${problems.map((p) => `  ${p.file}: ${p.message}`).join("\n")}`);
      const since = Date.now();
      const applied = config.apply(docs);
      await settle(since, applied.written);
      return applied;
    },
    async revert(applied) {
      const since = Date.now();
      const r = config.revert(applied as Applied);
      await settle(since, r.written, r.removed);
    },
  };
}

/** The mesh on a local Kubernetes control plane (tools/stack/kube/mesh.ts): same workloads, clients, certificates and targets. */
async function startKubeModeMesh(
  o: MeshOptions,
  hostOf: Record<UnitName, string>,
  ports: Record<UnitName, { port: number; adminPort: number }>,
  workloads: Record<UnitName, Workload>,
  clients: Workload[],
  sec: {
    security: MeshSecurity;
    serviceExtras: Record<UnitName, Record<string, unknown>>;
    clientExtras: Map<string, Record<string, unknown>>;
    dropSecurity: () => void;
  },
): Promise<Mesh & { serviceExtras: Record<UnitName, Record<string, unknown>>; stop(): Promise<void> }> {
  const k = o.kube ?? {};
  const kube = await startKubeMesh({
    controlPlane: k.controlPlane,
    controlPlaneOptions: { ports: k.ports, dir: k.dir },
    mesh: o.kustomization,
    instances: UNITS.map((u) => ({
      deployment: DEPLOYMENT[u],
      name: u,
      address: hostOf[u],
      ports: { grpc: ports[u].port, "http-metrics": ports[u].adminPort },
    })),
    clients,
    log: o.log,
    onControlPlaneExit: k.onExit,
  }).catch((err: Error) => {
    sec.dropSecurity();
    throw err;
  });
  if (o.onIstiodExit) kube.istiod.onExit(o.onIstiodExit);
  return {
    istiod: kube.istiod,
    kube,
    // Everything is stored and validated by the API server; what proxyless gRPC does not execute is as without kube.
    leftOut: [],
    workloads,
    targets: {
      identity: xdsTarget("identity", SERVICE_PORT),
      catalog: xdsTarget("catalog", SERVICE_PORT),
      orders: xdsTarget("orders", SERVICE_PORT),
      payment: xdsTarget("payment", SERVICE_PORT),
    },
    bootstrap(name) {
      const w = clients.find((c) => c.name === name);
      if (!w) throw new Error(`mesh: no client workload named ${name} (MeshOptions.clients: ${clients.map((c) => c.name).join(", ")})`);
      return bootstrapFor(w, kube.istiod.xdsAddress, sec.clientExtras.get(name));
    },
    security: sec.security,
    serviceExtras: sec.serviceExtras,
    async stop() {
      await kube.stop();
      sec.dropSecurity();
    },
    apply: (docs) => kube.apply(docs),
    revert: (applied) => kube.revert(applied as KubeApplied),
  };
}
