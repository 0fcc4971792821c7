// The cluster as the rendered manifests describe it (workloads, Services, ServiceAccounts, Secrets), and the
// lookups every mesh check makes on it.
import type { Manifest, Obj } from "../types.js";

export const NAMESPACE = "meshmart";
export const INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
export const INGRESS_LABELS = { istio: "ingressgateway" };
export const principalOf = (sa: string) => `cluster.local/ns/${NAMESPACE}/sa/${sa}`;

export interface Workload {
  file: string;
  obj: Obj;
  app: string;
  labels: Obj;
  sa?: string;
  ports: Map<string, number>; // container port name -> number
  env: Map<string, Obj>;
}

export interface Cluster {
  workloads: Workload[];
  services: Map<string, Manifest>;
  accounts: Set<string>;
  secrets: Map<string, Obj>;
  all: Manifest[];
}

export function model(manifests: Manifest[]): Cluster {
  const workloads: Workload[] = [];
  for (const m of manifests.filter((x) => x.obj.kind === "Deployment" || x.obj.kind === "StatefulSet")) {
    const pod = m.obj.spec?.template ?? {};
    const labels: Obj = pod.metadata?.labels ?? {};
    const ports = new Map<string, number>();
    const env = new Map<string, Obj>();
    for (const c of pod.spec?.containers ?? []) {
      for (const p of c.ports ?? []) if (p.name) ports.set(p.name, p.containerPort);
      for (const e of c.env ?? []) env.set(e.name, e);
    }
    workloads.push({ file: m.file, obj: m.obj, app: labels.app, labels, sa: pod.spec?.serviceAccountName, ports, env });
  }
  const byKind = (kind: string) => manifests.filter((m) => m.obj.kind === kind);
  return {
    workloads,
    services: new Map(byKind("Service").map((m) => [m.obj.metadata?.name, m])),
    accounts: new Set(byKind("ServiceAccount").map((m) => m.obj.metadata?.name)),
    secrets: new Map(byKind("Secret").map((m) => [m.obj.metadata?.name, m.obj])),
    all: manifests,
  };
}

export const matchesLabels = (want: Obj | undefined, labels: Obj) => Object.entries(want ?? {}).every(([k, v]) => labels[k] === v);
export const shortHost = (host: unknown) => String(host).split(".")[0];

export const inMeshNamespace = (obj: Obj) => (obj.metadata?.namespace ?? NAMESPACE) === NAMESPACE;

/** The pods behind a Service, and the container port a Service port lands on. */
export function backends(
  cluster: Cluster,
  serviceName: string,
  port: number | undefined,
): { workloads: Workload[]; containerPort?: number; servicePort?: Obj } {
  const svc = cluster.services.get(serviceName)?.obj;
  if (!svc) return { workloads: [] };
  const workloads = cluster.workloads.filter((w) => matchesLabels(svc.spec?.selector, w.labels));
  const ports: Obj[] = svc.spec?.ports ?? [];
  const servicePort = port === undefined ? (ports.length === 1 ? ports[0] : undefined) : ports.find((p) => p.port === port);
  if (!servicePort) return { workloads };
  const target = servicePort.targetPort ?? servicePort.port;
  const containerPort = typeof target === "number" ? target : workloads.map((w) => w.ports.get(target)).find((n) => n !== undefined);
  return { workloads, containerPort, servicePort };
}

/** "dns:///catalog:50051", "catalog:50051", "http://identity:9090/x" -> host and port. */
export function parseTarget(value: string): { host: string; port?: number; path?: string } | undefined {
  const m = value.match(/^(?:dns:\/\/\/|https?:\/\/|mongodb:\/\/(?:[^@/]*@)?)?([a-z0-9-]+)(?:\.[a-z0-9.-]*)?(?::(\d+))?(\/[^?#]*)?/i);
  return m ? { host: m[1], port: m[2] ? Number(m[2]) : undefined, path: m[3] } : undefined;
}

/** The AuthorizationPolicies inside the mesh's namespace (true) or outside it (the ingress gateway's). */
export const policiesIn = (manifests: Manifest[], inMesh: boolean) =>
  manifests.filter((m) => m.obj.kind === "AuthorizationPolicy" && inMeshNamespace(m.obj) === inMesh).map((m) => m.obj);

/** A VirtualService bound to a gateway (not only to `mesh`). */
export const isGatewayVs = (vs: Obj) => (vs.spec?.gateways ?? ["mesh"]).some((g: string) => g !== "mesh");

/** The gRPC port of a Service (appProtocol grpc, or a port named grpc / grpc-*). */
export function grpcPort(svc: Obj | undefined): number | undefined {
  return (svc?.spec?.ports ?? []).find((p: Obj) => p.appProtocol === "grpc" || /^grpc(-|$)/.test(String(p.name ?? "")))?.port;
}
