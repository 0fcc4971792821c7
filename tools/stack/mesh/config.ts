import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { renderAll } from "../../checks/manifests/render.js";
import type { Manifest, Obj } from "../../checks/manifests/types.js";
import { ROOT } from "../../root.js";
import { MESH_DOMAIN, MESH_NAMESPACE, type Workload } from "./bootstrap.js";

/** One local process that stands for a pod of a Deployment. */
export interface MeshInstance {
  /** The Deployment it is an instance of ("catalog-v1", "identity-v1"). */
  deployment: string;
  /** Its WorkloadEntry's (and node id's pod) name; the Deployment's name when omitted. */
  name?: string;
  /** Its own loopback address. */
  address: string;
  /** Local port per container port name of the Deployment ({ grpc: 50052, "http-metrics": 9092 }). */
  ports: Record<string, number>;
}

export interface LeftOut {
  file: string;
  kind: string;
  name: string;
  reason: string;
}

export interface MeshConfig {
  /** What istiod gets: ServiceEntries, WorkloadEntries, then the mesh/ objects. `file` is the source. */
  docs: Manifest[];
  leftOut: LeftOut[];
  /** Mesh host per Service name (catalog → catalog.meshmart.svc.cluster.local). */
  hosts: Record<string, string>;
}

export interface RenderOptions {
  instances: MeshInstance[];
  /** Client-only workloads (no Service selects them): a WorkloadEntry each, labelled app: <name>. */
  clients?: Workload[];
  /** The mesh kustomization; default "mesh" (the base policy); "mesh/canary" for the 90/10 split. */
  mesh?: string;
  /** The workloads' kustomization; default "deploy/overlays/dev". */
  overlay?: string;
  root?: string;
}

/** The n-th local workload address (127.0.0.1 stays the plain, non-mesh address). */
export function loopbackAddress(n: number): string {
  if (n < 0 || n > 240) throw new RangeError(`loopback address index ${n} is out of 0..240`);
  return `127.0.0.${10 + n}`;
}

export function objectKey(obj: Obj): string {
  return `${obj.kind}/${obj.metadata?.namespace ?? MESH_NAMESPACE}/${obj.metadata?.name}`;
}

/** Why an object of mesh/ is not given to istiod, or undefined when it is. */
export function whyLeftOut(obj: Obj): string | undefined {
  if (obj.kind === "Gateway") return "an ingress Gateway configures Envoy at the edge; there is no ingress gateway locally";
  if (obj.kind === "VirtualService") {
    const gateways: string[] = obj.spec?.gateways ?? [];
    if (gateways.length > 0 && !gateways.includes("mesh")) return "bound to the ingress Gateway only (spec.gateways), so it routes nothing inside the mesh";
  }
  if (obj.kind === "RequestAuthentication")
    return "JWT validation runs in Envoy; proxyless gRPC does not apply RequestAuthentication (the services verify tokens themselves)";
  return undefined;
}

const protocolOf = (port: Obj): string => {
  const p = String(port.appProtocol ?? port.name ?? "").toLowerCase();
  if (p === "grpc" || p.startsWith("grpc-")) return "GRPC";
  if (p.startsWith("http2")) return "HTTP2";
  if (p === "http" || p.startsWith("http-")) return "HTTP";
  return "TCP";
};

/** The objects of one kustomization (e.g. "mesh/canary"), rendered as a cluster would get them. */
export function renderKustomization(dir: string, root = ROOT): Manifest[] {
  const { renders, problems } = renderAll(root, [dir]);
  if (problems.length > 0) throw new Error(problems.map((p) => `${p.file}: ${p.message}`).join("\n"));
  return renders[0]?.objects ?? [];
}

export function renderMeshConfig(opts: RenderOptions): MeshConfig {
  const root = opts.root ?? ROOT;
  const overlay = opts.overlay ?? "deploy/overlays/dev";
  const meshDir = opts.mesh ?? "mesh";
  const { renders, problems } = renderAll(root, [overlay, meshDir]);
  if (problems.length > 0) throw new Error(problems.map((p) => `${p.file}: ${p.message}`).join("\n"));
  const workloads = renders.find((r) => r.dir === overlay)?.objects ?? [];
  const policy = renders.find((r) => r.dir === meshDir)?.objects ?? [];

  const deployments = new Map(workloads.filter((m) => m.obj.kind === "Deployment").map((m) => [m.obj.metadata.name as string, m]));
  for (const i of opts.instances)
    if (!deployments.has(i.deployment)) throw new Error(`mesh: no Deployment named ${i.deployment} in ${overlay} (instances must name one)`);

  const docs: Manifest[] = [];
  const leftOut: LeftOut[] = [];
  const hosts: Record<string, string> = {};
  const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  const podLabels = (d: Manifest): Record<string, string> => d.obj.spec?.template?.metadata?.labels ?? {};

  for (const svc of workloads.filter((m) => m.obj.kind === "Service")) {
    const name = svc.obj.metadata.name as string;
    const selector: Record<string, string> = svc.obj.spec?.selector ?? {};
    const mine = opts.instances.filter((i) => matches(selector, podLabels(deployments.get(i.deployment) as Manifest)));
    if (mine.length === 0) {
      leftOut.push({ file: svc.file, kind: "Service", name, reason: "no local instance (only meshmart's own services run in the local mesh)" });
      continue;
    }
    const host = `${name}.${MESH_NAMESPACE}.svc.${MESH_DOMAIN}`;
    hosts[name] = host;
    const ports: Obj[] = svc.obj.spec?.ports ?? [];
    docs.push({
      file: svc.file,
      obj: {
        apiVersion: "networking.istio.io/v1",
        kind: "ServiceEntry",
        metadata: { name, namespace: MESH_NAMESPACE },
        spec: {
          hosts: [host],
          location: "MESH_INTERNAL",
          resolution: "STATIC",
          ports: ports.map((p) => ({ number: p.port, name: p.name, protocol: protocolOf(p) })),
          workloadSelector: { labels: selector },
        },
      },
    });
    for (const i of mine) {
      const d = deployments.get(i.deployment) as Manifest;
      const container: Obj = d.obj.spec.template.spec.containers[0];
      const wePorts: Record<string, number> = {};
      for (const p of ports) {
        // The Service's targetPort names (or numbers) a container port; the instance says where that one is locally.
        const cp: Obj | undefined = (container.ports ?? []).find((c: Obj) => c.name === p.targetPort || c.containerPort === p.targetPort);
        const local = cp?.name ? i.ports[cp.name] : undefined;
        if (local === undefined)
          throw new Error(
            `mesh: instance ${i.name ?? i.deployment} has no local port for ${name}'s port ${p.name} (container port ${cp?.name ?? p.targetPort})`,
          );
        wePorts[p.name] = local;
      }
      docs.push(workloadEntry(d.file, i.name ?? i.deployment, i.address, podLabels(d), d.obj.spec.template.spec.serviceAccountName, wePorts));
    }
  }
  for (const c of opts.clients ?? []) docs.push(workloadEntry("tools/stack/mesh/config.ts", c.name, c.address, { app: c.name }, c.serviceAccount, undefined));

  for (const m of policy) {
    const reason = whyLeftOut(m.obj);
    if (reason) leftOut.push({ file: m.file, kind: m.obj.kind, name: m.obj.metadata?.name, reason });
    else docs.push(m);
  }
  return { docs, leftOut, hosts };
}

function workloadEntry(
  file: string,
  name: string,
  address: string,
  labels: Record<string, string>,
  sa: string | undefined,
  ports: Record<string, number> | undefined,
): Manifest {
  const spec: Obj = { address, labels };
  if (sa) spec.serviceAccount = sa;
  if (ports) spec.ports = ports;
  return { file, obj: { apiVersion: "networking.istio.io/v1", kind: "WorkloadEntry", metadata: { name, namespace: MESH_NAMESPACE }, spec } };
}

export { istioctlBinary, validateMeshDocs } from "./validate.js";

export interface Applied {
  /** Per file name in the directory: its content before the apply, or null when the object was new. */
  before: Map<string, string | null>;
  /** The objects as written (with their revision annotation): what istiod.waitForConfig waits for. */
  written: Obj[];
}

export interface Reverted {
  written: Obj[];
  removed: Obj[];
}

/** Annotation on every object written: a counter that tells istiod's copy of it (/debug/configz) apart. */
export const REVISION_ANNOTATION = "meshmart.dev/revision";
let revision = 0;

/**
 * istiod's config directory: one YAML file per object, named by kind, namespace and name, so that applying a
 * document replaces the object of the same name (as `kubectl apply` would) and reverting restores it. Writes
 * are atomic (a temporary name istiod does not read, then a rename): istiod never sees half a file.
 */
export class MeshConfigDir {
  private readonly sources = new Map<string, string>();
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  fileOf(obj: Obj): string {
    return `${objectKey(obj).replaceAll("/", "_").toLowerCase()}.yaml`;
  }

  /** The objects istiod currently reads. */
  docs(): Manifest[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .flatMap((f) => parseObjects(readFileSync(join(this.dir, f), "utf8")).map((obj) => ({ file: this.sources.get(f) ?? f, obj })));
  }

  /** Writes every document (the initial config); answers the objects as written. */
  write(docs: Manifest[]): Obj[] {
    return docs.map((m) => this.put(this.fileOf(m.obj), m.obj, m.file));
  }

  /** Replaces the objects of the same kind/namespace/name (or adds them); `revert` undoes it. */
  apply(docs: Manifest[]): Applied {
    const before = new Map<string, string | null>();
    const written: Obj[] = [];
    for (const m of docs) {
      const name = this.fileOf(m.obj);
      if (!before.has(name)) before.set(name, existsSync(join(this.dir, name)) ? readFileSync(join(this.dir, name), "utf8") : null);
      written.push(this.put(name, m.obj, m.file));
    }
    return { before, written };
  }

  /** Puts back what `apply` replaced (and removes what it added). */
  revert(applied: Applied): Reverted {
    const out: Reverted = { written: [], removed: [] };
    for (const [name, content] of applied.before) {
      if (content === null) {
        out.removed.push(...parseObjects(readFileSync(join(this.dir, name), "utf8")));
        rmSync(join(this.dir, name), { force: true });
      } else {
        for (const obj of parseObjects(content)) out.written.push(this.put(name, obj));
      }
    }
    return out;
  }

  /** The source file of a file in the directory (istiod's errors name the latter). */
  sourceOf(name: string): string | undefined {
    return this.sources.get(name);
  }

  private put(name: string, obj: Obj, source?: string): Obj {
    const stamped = { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata?.annotations, [REVISION_ANNOTATION]: String(++revision) } } };
    if (source) this.sources.set(name, source);
    const tmp = join(this.dir, `.${name}.tmp`);
    writeFileSync(tmp, `# from ${this.sources.get(name) ?? "?"}\n${stringify(stamped)}`);
    renameSync(tmp, join(this.dir, name));
    return stamped;
  }
}

function parseObjects(text: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o && typeof o === "object");
}

/** The documents of a YAML file (an experiment), with the file as their source; namespace defaults to meshmart. */
export function readMeshFile(path: string, label = path): Manifest[] {
  return parseAllDocuments(readFileSync(path, "utf8"))
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${label}: ${d.errors[0].message}`);
      return d.toJS() as Obj;
    })
    .filter((o) => o && typeof o === "object")
    .map((obj) => ({ file: label, obj: { ...obj, metadata: { namespace: MESH_NAMESPACE, ...obj.metadata } } }));
}
