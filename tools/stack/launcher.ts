// The one launcher of a local stack: the embedded database and every service (catalog as v1 and v2) as child
// processes, or with `monolith` the one monolith process, with handles to kill, restart and fault a unit.
// tools/stack/start.ts (npm start, every mode), the experiment runner, the bench (through child-stack.ts) and the
// tests all start meshmart through here, so they run the same thing.
// With `mesh`, the same processes run in a local Istio mesh: real istiod (tools/stack/mesh/istiod.ts) fed from the
// kustomize-rendered manifests (tools/stack/mesh/config.ts), each process with an address of its own and an xDS
// bootstrap (tools/stack/mesh/bootstrap.ts), orders calling catalog and payment as a proxyless gRPC client
// (the mesh part is mesh-stack.ts; the units' fixed facts units.ts).
// Over 300 lines on purpose: a stack is one closure over its units' processes (start, kill, restart, rollOver, pids
// and stop share its running/draining state, for services and monolith alike); cutting it up would hand that
// state around instead.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FaultSettings } from "#kit";
import { ordersPeerEnv } from "../../services/orders/src/peers.js";
import { ROOT } from "../root.js";
import { DIST, SERVICE_NODE_FLAGS } from "../setup/entries.js";
import { type DevDb, freePort, startDevDb } from "./devdb.js";
import { waitForHealth } from "./health-wait.js";
import { bootstrapEnv } from "./mesh/bootstrap.js";
import { addressBlock, MESH_SERVICE_ENV } from "./mesh/security.js";
import { type Mesh, type MeshOptions, startMesh } from "./mesh-stack.js";
import { checkBindable } from "./port-check.js";
import { DEFAULT_PORTS, type Endpoint, type Endpoints, MONOLITH, MONOLITH_PORTS, type MonolithUnit, SERVICE_PORT, UNITS, type UnitName } from "./units.js";

export type { Mesh, MeshApplied, MeshClient, MeshOptions } from "./mesh-stack.js";
export {
  DEFAULT_PORTS,
  DEPLOYMENT,
  type Endpoint,
  type Endpoints,
  MONOLITH,
  MONOLITH_PORTS,
  type MonolithUnit,
  SERVICE_PORT,
  UNITS,
  type UnitName,
} from "./units.js";
export { checkBindable };

export interface StackOptions<U extends string = UnitName> {
  /** One process running every service (tools/stack/monolith.ts) instead of one per service; not with `mesh`. */
  monolith?: boolean;
  /** "auto": free ports everywhere (tests); "default": DEFAULT_PORTS or MONOLITH_PORTS (units.ts). */
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
  env?: Partial<Record<U, Record<string, string>>>;
  /** A unit exited without being asked to (crash): start.ts stops everything, tests record it. */
  onUnexpectedExit?: (unit: U, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Every piece of a unit's output as it comes (stdio "pipe"), for a test that reads all of it, not the last part. */
  onOutput?: (unit: U, text: string) => void;
  healthTimeoutMs?: number;
  /** Run the services in the local mesh (real istiod, proxyless gRPC). */
  mesh?: MeshOptions;
}

export interface Stack<U extends string = UnitName> {
  endpoints: Record<U, Endpoint>;
  /** Set when started with `mesh`. */
  mesh?: Mesh;
  mongoUri: string;
  /** The embedded database's directory (undefined with an outside mongoUri). */
  dataDir?: string;
  /** Where the units write their spans (StackOptions.traces), if tracing is on. */
  tracesDir?: string;
  /** `meshmart ready` JSON shape: endpoints plus the database URI. */
  ready(): Record<U, Endpoint> & { mongodb: string };
  /** Sends `signal` (SIGKILL by default) and waits for the process to exit; it stays down until start/restart. */
  kill(unit: U, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a unit that is down, on its old ports, and waits until it is SERVING. */
  start(unit: U): Promise<void>;
  /** Graceful restart: SIGTERM (the kit drains in-flight calls), then a new process on the same ports, health-waited. */
  restart(unit: U): Promise<void>;
  /**
   * Mesh only: the restart a Deployment's rolling update does (maxSurge 1, maxUnavailable 0). A new process on
   * an address of its own with a WorkloadEntry of its own (istiod pushed it, every client acknowledged), waited
   * until SERVING; then the old process gets SIGTERM while its endpoint is being taken out, as kubelet and the
   * endpoints controller race on a cluster: callers that still pick it are refused, and the VirtualServices'
   * retries send them on. The unit's endpoints then name the new process.
   */
  rollOver(unit: U): Promise<void>;
  isRunning(unit: U): boolean;
  pid(unit: U): number | undefined;
  /**
   * Every process this stack spawned and runs now, by name: the units, "devdb", "istiod", "etcd" and
   * "kube-apiserver" (those it started itself). What a caller kills or measures, without asking the OS for children.
   */
  pids(): Record<string, number>;
  stopDb(): Promise<void>;
  startDb(): Promise<void>;
  /** Sets the kit's fault knobs of one unit through its admin `PUT /faults`. */
  setFaults(unit: U, settings: Partial<FaultSettings>): Promise<FaultSettings>;
  /** The unit's recent output (stdio "pipe" only). */
  output(unit: U): string;
  /** The embedded database's recent log lines. */
  dbOutput(): string;
  /** Stops every process and removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** Each service's gRPC address in a stack without the mesh (catalog: v1), as a client dials it. */
export function serviceTargets(stack: Stack): { identity: string; catalog: string; orders: string; payment: string } {
  const at = stack.endpoints;
  return { identity: at.identity.grpc, catalog: at["catalog-v1"].grpc, orders: at.orders.grpc, payment: at.payment.grpc };
}

/** rollOver's minReadySeconds (ms): above the kit's 1 s reconnect backoff cap (services/kit/src/client/grpc-transport.ts). */
export const MIN_READY_MS = 1500;

/** The compiled service each unit runs (npm run build; mocha's global setup builds before any test). */
const ENTRY: Record<UnitName | MonolithUnit, string> = {
  identity: join(DIST, "identity.js"),
  "catalog-v1": join(DIST, "catalog.js"),
  "catalog-v2": join(DIST, "catalog.js"),
  orders: join(DIST, "orders.js"),
  payment: join(DIST, "payment.js"),
  monolith: join(DIST, "monolith.js"),
};
const OUTPUT_KEEP = 64 * 1024; // bytes of output kept per unit for failure messages
interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  expected: boolean;
}

/** Starts the stack: every service as its own process (with `mesh`, in the local mesh), or the monolith. */
export function startStack(opts: StackOptions<MonolithUnit> & { monolith: true }): Promise<Stack<MonolithUnit>>;
export function startStack(opts?: StackOptions & { monolith?: false }): Promise<Stack>;
export async function startStack(o: StackOptions | StackOptions<MonolithUnit> = {}): Promise<Stack | Stack<MonolithUnit>> {
  if (o.monolith && o.mesh) throw new Error("startStack: the monolith runs without the mesh (it has no calls between services on the network)");
  return o.monolith ? startUnits<MonolithUnit>(o as StackOptions<MonolithUnit>, [MONOLITH]) : startUnits<UnitName>(o as StackOptions, UNITS);
}

async function startUnits<U extends UnitName | MonolithUnit>(opts: StackOptions<U>, units: readonly U[]): Promise<Stack<U>> {
  const auto = (opts.ports ?? "auto") === "auto";
  const defaults: Record<UnitName | MonolithUnit, [number, number]> = { ...DEFAULT_PORTS, [MONOLITH]: MONOLITH_PORTS };
  const ports = {} as Record<U, { port: number; adminPort: number }>;
  for (const u of units) ports[u] = auto ? { port: await freePort(), adminPort: await freePort() } : { port: defaults[u][0], adminPort: defaults[u][1] };
  // In the mesh every process has an address of its own (istiod tells workloads apart by IP) and serves the
  // container port of the manifests there, like a pod; the plaintext local port takes the unit's usual port.
  const address = addressBlock(auto);
  const hostOf = Object.fromEntries(units.map((u, i) => [u, opts.mesh ? address(i) : "127.0.0.1"])) as Record<U, string>;
  const localPorts = {} as Record<U, number>;
  if (opts.mesh)
    for (const u of units) {
      localPorts[u] = ports[u].port;
      ports[u].port = SERVICE_PORT;
    }
  const endpoints = Object.fromEntries(
    units.map((u) => [
      u,
      {
        grpc: `${hostOf[u]}:${ports[u].port}`,
        admin: `http://${hostOf[u]}:${ports[u].adminPort}`,
        ...(opts.mesh ? { local: `127.0.0.1:${localPorts[u]}` } : {}),
      },
    ]),
  ) as Record<U, Endpoint>;
  if (opts.mesh)
    for (const u of units) {
      await checkBindable(hostOf[u], ports[u].port, `${u}'s mesh gRPC port`);
      await checkBindable("127.0.0.1", localPorts[u], `${u}'s local gRPC port`);
      await checkBindable(hostOf[u], ports[u].adminPort, `${u}'s admin port`);
    }

  // The mesh first: an invalid mesh file stops the start before anything else runs.
  const meshDir = opts.mesh ? (opts.dataDir ? join(opts.dataDir, "mesh") : mkdtempSync(join(tmpdir(), "meshmart-mesh-"))) : undefined;
  // With a mesh the units are the services (startStack refuses a monolith in the mesh).
  const mesh = opts.mesh
    ? await startMesh(
        opts.mesh,
        hostOf as Record<UnitName, string>,
        ports as Record<UnitName, { port: number; adminPort: number }>,
        address,
        meshDir as string,
        opts.dataDir === undefined,
      )
    : undefined;

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

  const envOf = (u: U): Record<string, string> => {
    const base: Record<string, string> = {
      PORT: String(ports[u].port),
      ADMIN_PORT: String(ports[u].adminPort),
      HOST: "127.0.0.1",
      MONGODB_URI: uri,
      LOG_FORMAT: opts.logFormat ?? process.env.LOG_FORMAT ?? "json",
      LOG_LEVEL: opts.logLevel ?? process.env.LOG_LEVEL ?? "info",
    };
    if (mesh) {
      const service = u as UnitName;
      base.HOST = hostOf[u];
      base.LOCAL_GRPC_PORT = String(localPorts[u]);
      Object.assign(base, MESH_SERVICE_ENV, bootstrapEnv(mesh.workloads[service], mesh.istiod.xdsAddress, mesh.serviceExtras[service]));
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
      const at = endpoints as Record<string, Endpoint> as Endpoints;
      Object.assign(
        base,
        ordersPeerEnv({
          catalog: mesh ? mesh.targets.catalog : at["catalog-v1"].grpc,
          payment: mesh ? mesh.targets.payment : at.payment.grpc,
          identityAdmin: at.identity.admin,
        }),
      );
    }
    // The monolith holds orders and payment too (it reaches catalog and payment in memory: no peer addresses).
    if ((u === "orders" || u === MONOLITH) && opts.recovery) {
      base.RECOVERY_INTERVAL_MS = String(opts.recovery.intervalMs);
      base.RECOVERY_AFTER_MS = String(opts.recovery.afterMs);
    }
    if ((u === "payment" || u === MONOLITH) && opts.recovery) {
      // The ledger's reconcile on the same short clock as orders' recovery (a full scan: not every 500 ms).
      base.RECONCILE_INTERVAL_MS = String(Math.max(opts.recovery.intervalMs, 1000));
      base.RECONCILE_AFTER_MS = String(opts.recovery.afterMs);
    }
    return { ...base, ...opts.env?.[u] };
  };

  const running = new Map<U, Running>();
  /** Old processes of a rollOver still draining (stop() waits for them too). */
  const draining = new Set<Running>();
  /** Addresses for rolled-over processes: after the units' and the clients'. */
  let nextAddress = units.length + (opts.mesh?.clients?.length ?? 1) + 10;
  /** Each unit's WorkloadEntry name once rolled over (initially the unit's name). */
  const entryName = new Map<U, string>();
  const outputs = new Map<U, string>();
  let stopping = false;

  function launch(u: U) {
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ENTRY[u]], {
      cwd: ROOT,
      env: { ...process.env, ...envOf(u) },
      stdio: ["ignore", opts.stdio === "inherit" ? "inherit" : "pipe", opts.stdio === "inherit" ? "inherit" : "pipe"],
    });
    const keep = (d: Buffer) => {
      const s = (outputs.get(u) ?? "") + d;
      outputs.set(u, s.length > OUTPUT_KEEP ? s.slice(-OUTPUT_KEEP) : s);
      opts.onOutput?.(u, String(d));
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

  async function startUnit(u: U) {
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

  async function killUnit(u: U, signal: NodeJS.Signals = "SIGKILL") {
    const r = running.get(u);
    if (!r) return;
    r.expected = true;
    r.child.kill(signal);
    // A graceful stop drains within the kit's grace period; past that, something is wrong: force it.
    const force = setTimeout(() => r.child.kill("SIGKILL"), 30_000);
    await r.exited;
    clearTimeout(force);
  }

  const stack: Stack<U> = {
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
      const service = u as UnitName; // a mesh stack's units are the services
      const current = entryName.get(u) ?? u;
      const entry = dir.docs().find((d) => d.obj.kind === "WorkloadEntry" && d.obj.metadata?.name === current);
      if (!entry) throw new Error(`rollOver ${u}: no WorkloadEntry ${current} in the mesh config`);
      const host = address(nextAddress++);
      await checkBindable(host, ports[u].port, `${u}'s new mesh gRPC port`);
      await checkBindable(host, ports[u].adminPort, `${u}'s new admin port`);
      const local = await freePort();
      hostOf[u] = host;
      localPorts[u] = local;
      mesh.workloads[service].address = host;
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
    pids() {
      const out: Record<string, number | undefined> = Object.fromEntries([...running].map(([u, r]) => [u, r.child.pid]));
      out.devdb = db?.pid();
      if (mesh) out.istiod = mesh.istiod.pid();
      const plane = mesh?.kube?.controlPlane;
      if (plane && !opts.mesh?.kube?.controlPlane) for (const part of ["etcd", "kube-apiserver"] as const) out[part] = plane.pid(part);
      return Object.fromEntries(Object.entries(out).filter((e): e is [string, number] => e[1] !== undefined));
    },
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
    const waves = opts.monolith
      ? [[MONOLITH]]
      : [
          ["identity", "catalog-v1", "payment"],
          ["catalog-v2", "orders"],
        ];
    for (const wave of waves as U[][]) {
      await Promise.all(wave.map(startUnit));
    }
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}
