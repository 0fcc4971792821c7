// The local mesh part of a stack (startStack with `mesh`): the workload identities, the rendered and validated
// mesh config in istiod's directory (or, with `kube`, a local Kubernetes control plane), istiod itself, and
// apply/revert that wait until istiod pushed a change and every client acknowledged it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../checks/manifests/types.js";
import type { ControlPlane, ControlPlaneOptions, KubePart } from "./kube/control-plane.js";
import { type KubeApplied, type KubeMesh, startKubeMesh } from "./kube/mesh.js";
import { type Bootstrap, bootstrapFor, type Workload, xdsTarget } from "./mesh/bootstrap.js";
import { type Applied, type LeftOut, MeshConfigDir, renderMeshConfig, validateMeshDocs } from "./mesh/config.js";
import { type Istiod, startIstiod } from "./mesh/istiod.js";
import { INGRESS_IDENTITY, MeshSecurity, serviceAccount } from "./mesh/security.js";
import { DEPLOYMENT, SERVICE_PORT, UNITS, type UnitName } from "./units.js";

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

/** A started mesh, with what the launcher needs besides the public part: each unit's bootstrap extras, stop. */
export type StartedMesh = Mesh & { serviceExtras: Record<UnitName, Record<string, unknown>>; stop(): Promise<void> };

/** Renders and validates the mesh config, writes istiod's directory and starts istiod. */
export async function startMesh(
  o: MeshOptions,
  hostOf: Record<UnitName, string>,
  ports: Record<UnitName, { port: number; adminPort: number }>,
  address: (n: number) => string,
  dir: string,
  temporary: boolean,
): Promise<StartedMesh> {
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
    instances: instancesOf(hostOf, ports),
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
    targets: meshTargets(),
    bootstrap: clientBootstrap(clients, istiod.xdsAddress, clientExtras),
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

/** Each unit as an instance of its Deployment at its address and ports (the WorkloadEntries istiod is given). */
function instancesOf(hostOf: Record<UnitName, string>, ports: Record<UnitName, { port: number; adminPort: number }>) {
  return UNITS.map((u) => ({
    deployment: DEPLOYMENT[u],
    name: u,
    address: hostOf[u],
    ports: { grpc: ports[u].port, "http-metrics": ports[u].adminPort },
  }));
}

/** The xDS targets of the four services, as the mesh's clients dial them. */
function meshTargets() {
  return {
    identity: xdsTarget("identity", SERVICE_PORT),
    catalog: xdsTarget("catalog", SERVICE_PORT),
    orders: xdsTarget("orders", SERVICE_PORT),
    payment: xdsTarget("payment", SERVICE_PORT),
  };
}

/** The bootstrap of a client workload by name (its certificate settings included), against istiod at `xdsAddress`. */
function clientBootstrap(clients: Workload[], xdsAddress: string, extras: Map<string, Record<string, unknown>>): (name: string) => Bootstrap {
  return (name) => {
    const w = clients.find((c) => c.name === name);
    if (!w) throw new Error(`mesh: no client workload named ${name} (MeshOptions.clients: ${clients.map((c) => c.name).join(", ")})`);
    return bootstrapFor(w, xdsAddress, extras.get(name));
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
): Promise<StartedMesh> {
  const k = o.kube ?? {};
  const kube = await startKubeMesh({
    controlPlane: k.controlPlane,
    controlPlaneOptions: { ports: k.ports, dir: k.dir },
    mesh: o.kustomization,
    instances: instancesOf(hostOf, ports),
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
    targets: meshTargets(),
    bootstrap: clientBootstrap(clients, kube.istiod.xdsAddress, sec.clientExtras),
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
