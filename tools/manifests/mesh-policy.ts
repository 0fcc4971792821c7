// Istio semantics the CRD schemas cannot check, offline: who may call what (AuthorizationPolicies against the
// protos, and the edges the local mesh cannot run: HTTP to identity's JWKS, TCP to MongoDB), the ingress
// (routes, JWT), retries only where an RPC is declared safe to repeat, and the experiment / canary files (valid,
// replacing base resources by name).
// Not here, because calls prove them: that every gRPC call the code makes is allowed for its caller, and that
// no internal RPC is open to any other identity (the ingress gateway's included). test/mesh-security.test.ts
// makes those calls through real istiod enforcing mesh/base/authorization.yaml, with the call graph below.
// Protos come from the generated descriptors in gen/; the call graph from services/*/src (Connect clients made
// with the kit's `dial`, the methods called on them, and URLs in the Deployments' environment).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { parseAllDocuments } from "yaml";
import { parseFaults } from "../../services/kit/src/faults.js";
import type { Schemas } from "./schemas.js";
import { describe, type Manifest, type Obj, type Problem, type Render, type Stack } from "./types.js";
import { validateObject } from "./validate.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface MeshPolicyInput {
  /** The repository being checked (a temporary copy in the tests). */
  root: string;
  /** What each skaffold profile deploys, rendered; the base mesh is the `mesh` stack, the canary the `canary` one. */
  stacks: Stack[];
  /** Every kustomization rendered on its own (mesh/, mesh/canary, mesh/experiments, ...). */
  renders: Render[];
  schemas: Schemas;
  /** Where services/*\/src is read from; defaults to `root` when it has the sources, else this repository. */
  codeRoot?: string;
}

export const NAMESPACE = "meshmart";
export const INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
const INGRESS_LABELS = { istio: "ingressgateway" };
export const RETRY_SAFE = "meshmart.dev/retry-safe";
export const FAULT_KNOB = "meshmart.dev/fault-knob";
/** retryOn conditions after which the call never reached the app: safe to retry for any RPC. */
const ALWAYS_SAFE_RETRY = new Set(["connect-failure", "refused-stream", "reset-before-request"]);
/** What Istio retries when a route has no `retries` block. */
const ISTIO_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const principalOf = (sa: string) => `cluster.local/ns/${NAMESPACE}/sa/${sa}`;

// ---------------------------------------------------------------------------------------------------------
// Protos (generated descriptors) and the code's view of them

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
  for (const file of walk(join(REPO, "gen", "meshmart"))) {
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
const rpcByPath = new Map(RPCS.map((r) => [r.path, r]));
const servicesByName = new Map<string, Rpc[]>();
for (const r of RPCS) servicesByName.set(r.service, [...(servicesByName.get(r.service) ?? []), r]);

interface CodeFile {
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
 * The RPCs each service calls: a client made with `dial(XService, config.VAR)` and `.method(` calls on it
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
function servedBy(code: Map<string, CodeFile[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [app, files] of code)
    out.set(
      app,
      [...new Set(files.flatMap(({ text }) => [...text.matchAll(/\bservice\(\s*(\w+Service)\s*,/g)].map((m) => m[1])))].filter((s) => servicesByName.has(s)),
    );
  return out;
}

/** RPCs whose handler requires a bearer token: services registered with `interceptors: [auth]`, minus `public: [...]`. */
function tokenRequired(code: Map<string, CodeFile[]>): Set<string> {
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

// ---------------------------------------------------------------------------------------------------------
// The cluster as the manifests describe it

interface Workload {
  file: string;
  obj: Obj;
  app: string;
  labels: Obj;
  sa?: string;
  ports: Map<string, number>; // container port name -> number
  env: Map<string, Obj>;
}

interface Cluster {
  workloads: Workload[];
  services: Map<string, Manifest>;
  accounts: Set<string>;
  secrets: Map<string, Obj>;
  all: Manifest[];
}

function model(manifests: Manifest[]): Cluster {
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

const matchesLabels = (want: Obj | undefined, labels: Obj) => Object.entries(want ?? {}).every(([k, v]) => labels[k] === v);
const shortHost = (host: unknown) => String(host).split(".")[0];

const inMeshNamespace = (obj: Obj) => (obj.metadata?.namespace ?? NAMESPACE) === NAMESPACE;

/** The pods behind a Service, and the container port a Service port lands on. */
function backends(cluster: Cluster, serviceName: string, port: number | undefined): { workloads: Workload[]; containerPort?: number; servicePort?: Obj } {
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
function parseTarget(value: string): { host: string; port?: number; path?: string } | undefined {
  const m = value.match(/^(?:dns:\/\/\/|https?:\/\/|mongodb:\/\/(?:[^@/]*@)?)?([a-z0-9-]+)(?:\.[a-z0-9.-]*)?(?::(\d+))?(\/[^?#]*)?/i);
  return m ? { host: m[1], port: m[2] ? Number(m[2]) : undefined, path: m[3] } : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// AuthorizationPolicy evaluation (Istio's semantics for the fields meshmart uses)

export interface Request {
  principal?: string; // the caller's mTLS identity; none for a plaintext caller
  requestPrincipal?: string; // a valid JWT's iss/sub
  labels: Obj; // the callee pod's labels
  port: number; // the callee's container port
  http?: { method: string; path: string }; // absent for plain TCP
}

function stringMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}
const anyMatch = (patterns: string[] | undefined, value: string | undefined) => patterns === undefined || patterns.some((p) => stringMatch(p, value));
const noneMatch = (patterns: string[] | undefined, value: string | undefined) => patterns === undefined || !patterns.some((p) => stringMatch(p, value));

const HTTP_ONLY_OPERATION = ["methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"];
const HTTP_ONLY_SOURCE = ["requestPrincipals", "notRequestPrincipals"];

function ruleMatches(rule: Obj, req: Request, action: string): boolean {
  const tcp = !req.http;
  const httpOnly =
    (rule.from ?? []).some((f: Obj) => HTTP_ONLY_SOURCE.some((k) => f.source?.[k])) ||
    (rule.to ?? []).some((t: Obj) => HTTP_ONLY_OPERATION.some((k) => t.operation?.[k]));
  // Istio: on TCP an ALLOW rule with HTTP-only fields never matches; a DENY rule ignores them (stricter).
  if (tcp && httpOnly && action === "ALLOW") return false;
  const fromOk =
    !rule.from ||
    rule.from.some((f: Obj) => {
      const s = f.source ?? {};
      const ns = req.principal?.match(/\/ns\/([^/]+)\//)?.[1];
      return (
        anyMatch(s.principals, req.principal) &&
        noneMatch(s.notPrincipals, req.principal) &&
        anyMatch(s.namespaces, ns) &&
        noneMatch(s.notNamespaces, ns) &&
        (tcp || (anyMatch(s.requestPrincipals, req.requestPrincipal) && noneMatch(s.notRequestPrincipals, req.requestPrincipal)))
      );
    });
  const toOk =
    !rule.to ||
    rule.to.some((t: Obj) => {
      const o = t.operation ?? {};
      const port = String(req.port);
      return (
        anyMatch(o.ports, port) &&
        noneMatch(o.notPorts, port) &&
        (tcp ||
          (anyMatch(o.methods, req.http?.method) &&
            noneMatch(o.notMethods, req.http?.method) &&
            anyMatch(o.paths, req.http?.path) &&
            noneMatch(o.notPaths, req.http?.path)))
      );
    });
  // `when` conditions are not modelled: an ALLOW rule with one counts as not matching, a DENY as matching.
  if (rule.when?.length) return action !== "ALLOW" ? fromOk && toOk : false;
  return fromOk && toOk;
}

/** Istio's order: any matching DENY refuses; then, if any ALLOW policy applies, one of its rules must match. */
export function authorize(policies: Obj[], req: Request): { allowed: boolean; by?: Obj } {
  const applicable = policies.filter((p) => matchesLabels(p.spec?.selector?.matchLabels, req.labels));
  for (const p of applicable.filter((x) => x.spec?.action === "DENY"))
    if ((p.spec?.rules ?? []).some((r: Obj) => ruleMatches(r, req, "DENY"))) return { allowed: false, by: p };
  const allows = applicable.filter((p) => (p.spec?.action ?? "ALLOW") === "ALLOW");
  if (allows.length === 0) return { allowed: true };
  const by = allows.find((p) => (p.spec?.rules ?? []).some((r: Obj) => ruleMatches(r, req, "ALLOW")));
  return { allowed: by !== undefined, by };
}

// ---------------------------------------------------------------------------------------------------------
// The checks

/** The mesh checks on what `skaffold -p mesh` deploys, the canary stack's routes, and every experiment file. */
export function checkMeshPolicy(input: MeshPolicyInput): Problem[] {
  const codeRoot = input.codeRoot ?? (existsSync(join(input.root, "services", "orders", "src")) ? input.root : REPO);
  const code = readCode(codeRoot);
  const mesh = input.stacks.find((s) => s.profile === "mesh");
  if (!mesh) return [{ file: "skaffold.yaml", message: "no `mesh` profile: the mesh policy checks need what it deploys" }];
  const cluster = model(mesh.objects);
  const problems: Problem[] = [];
  problems.push(...checkAuthorizationPolicies(cluster));
  problems.push(...checkCallsAllowed(cluster, code));
  problems.push(...checkIngress(cluster, code));
  problems.push(...checkJwt(cluster, code));
  problems.push(...checkProbeRewrite(cluster));
  problems.push(...checkTelemetry(cluster));
  const baseRoutes = checkRoutes(code, mesh.objects);
  problems.push(...baseRoutes);
  const canary = input.stacks.find((s) => s.profile === "canary");
  if (canary) problems.push(...checkRoutes(code, canary.objects));
  const validate = (file: string, obj: Obj) => validateObject({ file, obj }, input.schemas);
  problems.push(...checkExperiments(input.root, mesh.objects, validate, cluster, code, baseRoutes));
  return problems;
}

const policiesIn = (manifests: Manifest[], inMesh: boolean) =>
  manifests.filter((m) => m.obj.kind === "AuthorizationPolicy" && inMeshNamespace(m.obj) === inMesh).map((m) => m.obj);

/** Every principal is an existing ServiceAccount (or the ingress gateway's), every path an RPC in the protos, every port a container port. */
function checkAuthorizationPolicies(cluster: Cluster): Problem[] {
  const problems: Problem[] = [];
  for (const { file, obj } of cluster.all.filter((m) => m.obj.kind === "AuthorizationPolicy")) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    const selected = obj.spec?.selector?.matchLabels;
    const targets = inMeshNamespace(obj) ? cluster.workloads.filter((w) => matchesLabels(selected, w.labels)) : [];
    if (inMeshNamespace(obj) && selected && targets.length === 0) say(`spec.selector ${JSON.stringify(selected)} selects no workload`);
    (obj.spec?.rules ?? []).forEach((rule: Obj, i: number) => {
      (rule.from ?? []).forEach((f: Obj, j: number) => {
        for (const p of [...(f.source?.principals ?? []), ...(f.source?.notPrincipals ?? [])]) {
          const sa = String(p).match(new RegExp(`^cluster\\.local/ns/${NAMESPACE}/sa/([^/]+)$`))?.[1];
          if (p !== INGRESS_PRINCIPAL && (!sa || !cluster.accounts.has(sa)))
            say(`spec.rules[${i}].from[${j}].source.principals: ${p} is neither a ServiceAccount in the manifests nor the ingress gateway's`);
        }
      });
      (rule.to ?? []).forEach((t: Obj, j: number) => {
        const at = `spec.rules[${i}].to[${j}].operation`;
        for (const path of [...(t.operation?.paths ?? []), ...(t.operation?.notPaths ?? [])]) {
          if (!String(path).startsWith("/meshmart.")) continue; // non-gRPC paths (JWKS) are checked by the call graph
          const known = String(path).endsWith("*") ? RPCS.some((r) => stringMatch(path, r.path)) : rpcByPath.has(path);
          if (!known) say(`${at}.paths: ${path} is no RPC in proto/ (check the package, service and method name)`);
        }
        for (const port of t.operation?.ports ?? [])
          if (targets.length > 0 && !targets.some((w) => [...w.ports.values()].includes(Number(port))))
            say(`${at}.ports: ${port} is no container port of the selected workloads`);
      });
    });
  }
  return problems;
}

/** The edge a caller makes, resolved to the callee's pods and container port. */
interface Edge {
  caller: Workload;
  what: string; // for messages
  where: string; // code or manifest location of the call
  service: string;
  port?: number;
  http?: { method: string; path: string };
}

function edgesOf(cluster: Cluster, code: Map<string, CodeFile[]>): Edge[] {
  const edges: Edge[] = [];
  for (const call of callGraph(code)) {
    for (const caller of cluster.workloads.filter((w) => w.app === call.caller)) {
      const target = parseTarget(String(caller.env.get(call.envVar)?.value ?? ""));
      if (!target) continue; // no address in the manifests: the service is not deployed that way
      edges.push({
        caller,
        what: `${call.rpc.service}/${call.rpc.method}`,
        where: `${call.where} (address from ${call.envVar})`,
        service: target.host,
        port: target.port,
        http: { method: "POST", path: call.rpc.path },
      });
    }
  }
  for (const caller of cluster.workloads) {
    for (const [name, e] of caller.env) {
      const value = String(e.value ?? "");
      if (/^https?:\/\//.test(value)) {
        const t = parseTarget(value);
        if (t && cluster.services.has(t.host))
          edges.push({
            caller,
            what: `GET ${t.path ?? "/"}`,
            where: `${caller.file} env ${name}`,
            service: t.host,
            port: t.port,
            http: { method: "GET", path: t.path ?? "/" },
          });
      }
      const secret = e.valueFrom?.secretKeyRef;
      if (secret) {
        const s = cluster.secrets.get(secret.name);
        const raw = s?.stringData?.[secret.key] ?? (s?.data?.[secret.key] ? Buffer.from(s.data[secret.key], "base64").toString() : undefined);
        const t = raw && /^mongodb:\/\//.test(raw) ? parseTarget(raw) : undefined;
        if (t && cluster.services.has(t.host))
          edges.push({ caller, what: `TCP ${t.host}:${t.port ?? 27017}`, where: `${caller.file} env ${name}`, service: t.host, port: t.port ?? 27017 });
      }
    }
  }
  return edges;
}

/**
 * Every URL and database a Deployment is given is allowed for the caller's ServiceAccount, and every gRPC call
 * the code makes reaches a Service port. Whether the policy allows those gRPC calls is proven by calls, not
 * here: test/mesh-security.test.ts ("every RPC of the call graph succeeds from the caller's own identity").
 */
function checkCallsAllowed(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
  const problems: Problem[] = [];
  const policies = policiesIn(cluster.all, true);
  const policyFile = (labels: Obj) =>
    cluster.all.find(
      (m) => m.obj.kind === "AuthorizationPolicy" && inMeshNamespace(m.obj) && m.obj.spec?.selector && matchesLabels(m.obj.spec.selector.matchLabels, labels),
    )?.file ?? cluster.all.find((m) => m.obj.kind === "AuthorizationPolicy")?.file;
  for (const edge of edgesOf(cluster, code)) {
    const { workloads, containerPort } = backends(cluster, edge.service, edge.port);
    if (workloads.length === 0 || containerPort === undefined) {
      problems.push({
        file: edge.caller.file,
        message: `${describe(edge.caller.obj)}: calls ${edge.what} on ${edge.service}:${edge.port ?? "?"} (${edge.where}), which no Service port serves`,
      });
      continue;
    }
    if (!edge.caller.sa) continue; // reported by the workload checks
    if (edge.http?.method === "POST") continue; // a gRPC call: test/mesh-security.test.ts is the authority
    for (const callee of workloads) {
      const req: Request = { principal: principalOf(edge.caller.sa), labels: callee.labels, port: containerPort, http: edge.http };
      if (!authorize(policies, req).allowed) {
        problems.push({
          file: policyFile(callee.labels) ?? callee.file,
          message: `${edge.caller.app} (ServiceAccount ${edge.caller.sa}) calls ${edge.what} on ${describe(callee.obj)} port ${containerPort} (${edge.where}), but no AuthorizationPolicy allows it`,
        });
        break;
      }
    }
  }
  return problems;
}

/**
 * The RPCs an HTTP route can receive (in order, a route with only uri and port conditions consumes the RPCs it
 * matches). `port` is the port the RPCs arrive on (the host's gRPC port); unknown (a gateway's routes), a port
 * condition may or may not hold, so it consumes nothing.
 */
function routesFor(vs: Obj, candidates: Rpc[], port?: number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const rpc of candidates) {
    const hits: number[] = [];
    for (const [i, route] of (vs.spec?.http ?? []).entries()) {
      const matches: Obj[] = route.match ?? [];
      if (matches.length === 0) {
        hits.push(i);
        break;
      }
      const uriOk = (m: Obj) =>
        !m.uri ||
        (m.uri.exact !== undefined && m.uri.exact === rpc.path) ||
        (m.uri.prefix !== undefined && rpc.path.startsWith(m.uri.prefix)) ||
        (m.uri.regex !== undefined && new RegExp(`^(?:${m.uri.regex})$`).test(rpc.path));
      const portOk = (m: Obj) => m.port === undefined || port === undefined || m.port === port;
      const hit = matches.filter((m) => uriOk(m) && portOk(m));
      if (hit.length === 0) continue;
      hits.push(i);
      const certain = (m: Obj) => Object.keys(m).every((k) => k === "uri" || k === "name" || (k === "port" && port !== undefined));
      if (hit.some(certain)) break; // nothing falls through
    }
    out.set(rpc.path, hits);
  }
  return out;
}

/** The gRPC port of a Service (appProtocol grpc, or a port named grpc / grpc-*). */
function grpcPort(svc: Obj | undefined): number | undefined {
  return (svc?.spec?.ports ?? []).find((p: Obj) => p.appProtocol === "grpc" || /^grpc(-|$)/.test(String(p.name ?? "")))?.port;
}

/**
 * A mesh route to a Service with several ports names the port it sends to (else Istio's IST0112: the
 * destination is ambiguous) and matches on that port: without the match it also takes the calls made to the
 * host's other ports (orders fetching identity's JWKS on 9090) and sends them to the wrong one.
 */
function checkRoutePorts(vs: Manifest, services: Map<string, Obj>, say: (message: string) => void) {
  (vs.obj.spec?.http ?? []).forEach((route: Obj, i: number) => {
    const at = `spec.http[${i}]${route.name ? ` (${route.name})` : ""}`;
    const matched = (route.match ?? []) as Obj[];
    for (const [j, d] of (route.route ?? []).entries()) {
      const host = shortHost(d.destination?.host);
      const ports: number[] = (services.get(host)?.spec?.ports ?? []).map((p: Obj) => p.port);
      if (ports.length < 2) continue;
      const port = d.destination?.port?.number;
      if (port === undefined) {
        say(
          `${at}.route[${j}].destination: Service ${host} exposes ports ${ports.join(", ")}, so the destination must name one (destination.port; Istio's IST0112), and the route match on it`,
        );
        continue;
      }
      if (!ports.includes(port)) say(`${at}.route[${j}].destination.port: ${port} is no port of Service ${host}`);
      else if (matched.length === 0 || matched.some((m) => m.port !== port)) {
        const others = ports.filter((p) => p !== port).join(", ");
        say(
          `${at}: sends to ${host} port ${port} but does not match on port ${port} in every match (match[].port), so calls to ${host}'s port ${others} take this route too and land on ${port}`,
        );
      }
    }
  });
}

const isGatewayVs = (vs: Obj) => (vs.spec?.gateways ?? ["mesh"]).some((g: string) => g !== "mesh");

/** The gateway's routes lead to existing Services and ports, and "routed by the ingress" equals "allowed for the ingress". */
function checkIngress(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
  const problems: Problem[] = [];
  const gateways = cluster.all.filter((m) => m.obj.kind === "Gateway");
  for (const { file, obj } of gateways)
    if (!matchesLabels(obj.spec?.selector, INGRESS_LABELS) || !matchesLabels(INGRESS_LABELS, obj.spec?.selector ?? {}))
      problems.push({ file, message: `${describe(obj)}: spec.selector must be ${JSON.stringify(INGRESS_LABELS)} (Istio's default ingress gateway)` });
  const served = servedBy(code);
  const policies = policiesIn(cluster.all, true);
  const internal = new Set(callGraph(code).map((c) => c.rpc.path));
  const routed = new Map<string, string>(); // rpc path -> service it is routed to
  for (const vsm of cluster.all.filter((m) => m.obj.kind === "VirtualService" && isGatewayVs(m.obj))) {
    const { file, obj } = vsm;
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    for (const g of obj.spec?.gateways ?? [])
      if (g !== "mesh" && !gateways.some((m) => m.obj.metadata?.name === String(g).split("/").pop())) say(`spec.gateways: ${g} is no Gateway in the manifests`);
    const listening: number[] = gateways
      .filter((g) => (obj.spec?.gateways ?? []).some((name: string) => String(name).split("/").pop() === g.obj.metadata?.name))
      .flatMap((g) => (g.obj.spec?.servers ?? []).map((server: Obj) => server.port?.number));
    (obj.spec?.http ?? []).forEach((route: Obj, i: number) => {
      // A port condition on a gateway route is the gateway's port: one it does not listen on never matches.
      (route.match ?? []).forEach((m: Obj, k: number) => {
        if (m.port !== undefined && !listening.includes(m.port))
          say(
            `spec.http[${i}]${route.name ? ` (${route.name})` : ""}.match[${k}].port: ${m.port} is no port the Gateway listens on (${listening.join(", ")}), so the route never matches`,
          );
      });
      for (const [j, d] of (route.route ?? []).entries()) {
        const at = `spec.http[${i}]${route.name ? ` (${route.name})` : ""}.route[${j}].destination`;
        const host = shortHost(d.destination?.host);
        const svc = cluster.services.get(host)?.obj;
        if (!svc) say(`${at}.host: ${d.destination?.host} has no Service`);
        else if (d.destination?.port?.number === undefined && (svc.spec?.ports ?? []).length > 1)
          say(`${at}.port: Service ${host} has several ports; a gateway route must name one`);
        else if (d.destination?.port?.number !== undefined && !(svc.spec?.ports ?? []).some((p: Obj) => p.port === d.destination.port.number))
          say(`${at}.port: ${d.destination.port.number} is no port of Service ${host}`);
      }
    });
    for (const [path, hits] of routesFor(obj, RPCS)) {
      for (const i of hits) {
        const route = obj.spec.http[i];
        for (const d of route.route ?? []) {
          const host = shortHost(d.destination?.host);
          const rpc = rpcByPath.get(path) as Rpc;
          if (!(served.get(host) ?? []).includes(rpc.service)) {
            say(`spec.http[${i}]${route.name ? ` (${route.name})` : ""} sends ${rpc.service}/${rpc.method} to ${host}, which does not serve ${rpc.service}`);
            continue;
          }
          routed.set(path, host);
          const { workloads, containerPort } = backends(cluster, host, d.destination?.port?.number);
          for (const w of workloads) {
            if (containerPort === undefined) continue;
            const req: Request = { principal: INGRESS_PRINCIPAL, labels: w.labels, port: containerPort, http: { method: "POST", path } };
            if (!authorize(policies, req).allowed)
              say(`routes ${rpc.service}/${rpc.method} to ${host}, but no AuthorizationPolicy allows the ingress gateway to call it (${describe(w.obj)})`);
          }
        }
      }
    }
  }
  // What the ingress may call, per workload and RPC it serves: only what is routed. (That it can call no internal
  // RPC is proven by calls: test/mesh-security.test.ts, "every internal RPC from every identity that is not allowed".)
  for (const w of cluster.workloads) {
    for (const service of served.get(w.app) ?? []) {
      for (const rpc of servicesByName.get(service) ?? []) {
        for (const port of new Set(w.ports.values())) {
          const verdict = authorize(policies, { principal: INGRESS_PRINCIPAL, labels: w.labels, port, http: { method: "POST", path: rpc.path } });
          if (!verdict.allowed) continue;
          const file = cluster.all.find((m) => m.obj === verdict.by)?.file ?? w.file;
          const name = verdict.by ? describe(verdict.by) : `no AuthorizationPolicy for ${describe(w.obj)}`;
          if (!routed.has(rpc.path) && !internal.has(rpc.path))
            problems.push({
              file,
              message: `${name}: lets the ingress gateway call ${rpc.service}/${rpc.method}, which no ingress route sends (allow only what is routed)`,
            });
        }
      }
    }
  }
  return problems;
}

/** RequestAuthentication agrees with identity's and orders' configuration; token-needing RPCs are refused at the gateway without one. */
function checkJwt(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
  const problems: Problem[] = [];
  const files = [...code.values()].flat();
  const identitySrc = files.find((f) => f.file.endsWith(join("identity", "src", "server.ts")))?.text ?? "";
  const ordersSrc = files.find((f) => f.file.endsWith(join("orders", "src", "server.ts")))?.text ?? "";
  const def = (src: string, key: string) => src.match(new RegExp(`\\b${key}:\\s*"([^"]*)"`))?.[1];
  const issuer = def(identitySrc, "JWT_ISSUER");
  const audience = def(identitySrc, "JWT_AUDIENCE");
  const jwksPath = identitySrc.match(/JWKS_PATH\s*=\s*"([^"]+)"/)?.[1];
  const reqAuths = cluster.all.filter((m) => m.obj.kind === "RequestAuthentication");
  if (reqAuths.length === 0) problems.push({ file: "mesh/base/jwt.yaml", message: "no RequestAuthentication: the ingress would not check identity's tokens" });
  for (const { file, obj } of reqAuths) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    (obj.spec?.jwtRules ?? []).forEach((rule: Obj, i: number) => {
      const at = `spec.jwtRules[${i}]`;
      if (rule.issuer !== issuer) say(`${at}.issuer: "${rule.issuer}" is not identity's JWT_ISSUER default "${issuer}" (services/identity/src/server.ts)`);
      if (def(ordersSrc, "JWT_ISSUER") !== issuer || def(ordersSrc, "JWT_AUDIENCE") !== audience)
        say(`${at}: orders' JWT_ISSUER/JWT_AUDIENCE defaults differ from identity's (services/orders/src/server.ts)`);
      if (!(rule.audiences ?? []).includes(audience)) say(`${at}.audiences: must include identity's JWT_AUDIENCE "${audience}"`);
      if (rule.forwardOriginalToken !== true)
        say(`${at}.forwardOriginalToken: must be true; orders and identity read the user from the token, and Istio strips it otherwise`);
      const t = parseTarget(String(rule.jwksUri ?? ""));
      const { workloads, containerPort } = t ? backends(cluster, t.host, t.port) : { workloads: [], containerPort: undefined };
      if (!t || workloads.length === 0 || containerPort === undefined) {
        say(`${at}.jwksUri: ${rule.jwksUri} is no Service port in the manifests`);
        return;
      }
      if (t.path !== jwksPath) say(`${at}.jwksUri: path ${t.path} is not identity's JWKS_PATH ${jwksPath}`);
      if (!workloads.some((w) => Number(w.env.get("ADMIN_PORT")?.value) === containerPort))
        say(`${at}.jwksUri: port ${t.port} does not reach identity's ADMIN_PORT`);
      // istiod fetches it in plaintext, with no mesh identity: the port must accept plaintext and allow the GET.
      for (const w of workloads) {
        const plaintext = cluster.all.some(
          (m) =>
            m.obj.kind === "PeerAuthentication" &&
            matchesLabels(m.obj.spec?.selector?.matchLabels, w.labels) &&
            m.obj.spec?.selector &&
            ["PERMISSIVE", "DISABLE"].includes(m.obj.spec?.portLevelMtls?.[String(containerPort)]?.mode),
        );
        if (!plaintext)
          say(`${at}.jwksUri: istiod fetches it without mTLS, but no PeerAuthentication makes port ${containerPort} of ${describe(w.obj)} PERMISSIVE`);
        const req: Request = { labels: w.labels, port: containerPort, http: { method: "GET", path: t.path ?? "/" } };
        if (!authorize(policiesIn(cluster.all, true), req).allowed) say(`${at}.jwksUri: no AuthorizationPolicy lets a plaintext caller (istiod) GET ${t.path}`);
      }
    });
    if (!matchesLabels(obj.spec?.selector?.matchLabels, INGRESS_LABELS) || obj.metadata?.namespace !== "istio-system")
      say("must select the ingress gateway (istio: ingressgateway) in namespace istio-system");
  }
  // Token-needing RPCs that the ingress routes are refused there without a token; public ones are not.
  const gatewayPolicies = policiesIn(cluster.all, false).filter((p) => p.metadata?.namespace === "istio-system");
  const need = tokenRequired(code);
  const routedPaths = new Set<string>();
  for (const m of cluster.all.filter((x) => x.obj.kind === "VirtualService" && isGatewayVs(x.obj)))
    for (const [path, hits] of routesFor(m.obj, RPCS)) if (hits.length > 0) routedPaths.add(path);
  const file = reqAuths[0]?.file ?? "mesh/base/jwt.yaml";
  for (const path of routedPaths) {
    const rpc = rpcByPath.get(path) as Rpc;
    const without = authorize(gatewayPolicies, { principal: undefined, labels: INGRESS_LABELS, port: 8080, http: { method: "POST", path } });
    const withToken = authorize(gatewayPolicies, { requestPrincipal: `${issuer}/user`, labels: INGRESS_LABELS, port: 8080, http: { method: "POST", path } });
    if (need.has(path) && without.allowed)
      problems.push({
        file,
        message: `the ingress gateway lets ${rpc.service}/${rpc.method} through without a token, but the service requires one (add it to the DENY policy's paths)`,
      });
    if (!need.has(path) && !without.allowed)
      problems.push({ file, message: `the ingress gateway refuses ${rpc.service}/${rpc.method} without a token, but the service needs none (it is public)` });
    if (!withToken.allowed) problems.push({ file, message: `the ingress gateway refuses ${rpc.service}/${rpc.method} even with a valid token` });
  }
  return problems;
}

/**
 * The telemetry providers an install made as the README says (`istioctl install --set profile=demo`) has: the
 * mesh config's built-ins (istio.io/istio pkg/config/mesh/mesh.go) and the demo profile's extension providers
 * (manifests/helm-profiles/demo.yaml), of the Istio version tools/setup.sh builds.
 */
export const DEMO_PROVIDERS = ["prometheus", "stackdriver", "envoy", "otel", "skywalking", "otel-tracing", "jaeger"];

/**
 * Telemetry names only providers the demo install has, and a tracing block names one: the demo profile
 * defines no default tracer, so tracing without a provider sends nothing.
 */
function checkTelemetry(cluster: Cluster): Problem[] {
  const problems: Problem[] = [];
  for (const { file, obj } of cluster.all.filter((m) => m.obj.kind === "Telemetry")) {
    for (const kind of ["tracing", "accessLogging", "metrics"]) {
      (obj.spec?.[kind] ?? []).forEach((entry: Obj, i: number) => {
        const names: string[] = (entry.providers ?? []).map((p: Obj) => p.name);
        if (names.length === 0 && kind === "tracing")
          problems.push({
            file,
            message: `${describe(obj)}: spec.tracing[${i}].providers: none named, and the demo profile has no default tracer, so no trace is sent (name one: ${DEMO_PROVIDERS.join(", ")})`,
          });
        for (const name of names.filter((n) => !DEMO_PROVIDERS.includes(n)))
          problems.push({
            file,
            message: `${describe(obj)}: spec.${kind}[${i}].providers: ${name} is no provider of the demo install (${DEMO_PROVIDERS.join(", ")})`,
          });
      });
    }
  }
  return problems;
}

/** Probes go through Istio's agent only while probe rewriting is on; under STRICT mTLS a kubelet probe would be refused otherwise. */
function checkProbeRewrite(cluster: Cluster): Problem[] {
  return cluster.workloads
    .filter((w) => String(w.obj.spec?.template?.metadata?.annotations?.["sidecar.istio.io/rewriteAppHTTPProbers"]) === "false")
    .map((w) => ({
      file: w.file,
      message: `${describe(w.obj)}: spec.template.metadata.annotations sidecar.istio.io/rewriteAppHTTPProbers "false" makes kubelet probe in plaintext, which STRICT mTLS refuses`,
    }));
}

/** "IdentityService/Login, CatalogService/*" -> RPC paths; unknown entries are problems. */
function retrySafe(vs: Manifest, say: (message: string) => void): Set<string> {
  const raw = vs.obj.metadata?.annotations?.[RETRY_SAFE];
  const out = new Set<string>();
  if (raw === undefined) return out;
  for (const entry of String(raw)
    .split(/[\s,]+/)
    .filter(Boolean)) {
    const [service, method] = entry.split("/");
    const rpcs = (servicesByName.get(service) ?? []).filter((r) => method === "*" || r.method === method);
    if (rpcs.length === 0) say(`metadata.annotations ${RETRY_SAFE}: ${entry} is no RPC in proto/ (write Service/Method or Service/*)`);
    for (const r of rpcs) out.add(r.path);
  }
  return out;
}

/** Retries only where declared safe; the gateway's split for a host equals the mesh's. */
function checkRoutes(code: Map<string, CodeFile[]>, manifests: Manifest[]): Problem[] {
  const problems: Problem[] = [];
  const served = servedBy(code);
  const services = new Map<string, Obj>(manifests.filter((m) => m.obj.kind === "Service").map((m) => [m.obj.metadata?.name, m.obj]));
  const vss = manifests.filter((m) => m.obj.kind === "VirtualService");
  for (const vs of vss) {
    const say = (message: string) => problems.push({ file: vs.file, message: `${describe(vs.obj)}: ${message}` });
    const safe = retrySafe(vs, say);
    const gateway = isGatewayVs(vs.obj);
    if (!gateway) checkRoutePorts(vs, services, say); // the gateway's routes: checkIngress
    const candidates = gateway
      ? RPCS
      : (vs.obj.spec?.hosts ?? []).flatMap((h: string) => (served.get(shortHost(h)) ?? []).flatMap((s) => servicesByName.get(s) ?? []));
    const port = gateway ? undefined : grpcPort(services.get(shortHost(vs.obj.spec?.hosts?.[0])));
    for (const [path, hits] of routesFor(vs.obj, candidates, port)) {
      for (const i of hits) {
        const route = vs.obj.spec.http[i];
        const retries = route.retries;
        if (retries?.attempts === 0) continue;
        const on = String(retries?.retryOn ?? ISTIO_DEFAULT_RETRY_ON)
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
        const unsafe = on.filter((c) => !ALWAYS_SAFE_RETRY.has(c));
        if (unsafe.length === 0 || safe.has(path)) continue;
        const rpc = rpcByPath.get(path) as Rpc;
        const at = `spec.http[${i}]${route.name ? ` (${route.name})` : ""}.retries`;
        say(
          retries
            ? `${at}: retries ${rpc.service}/${rpc.method} on "${unsafe.join(",")}", but ${RETRY_SAFE} does not list it (retry it only on connect-failure,refused-stream, or declare why it is safe)`
            : `${at}: none set, so Istio retries ${rpc.service}/${rpc.method} twice on unavailable/cancelled/503 by default, but ${RETRY_SAFE} does not list it`,
        );
      }
    }
  }
  // The gateway does not use the mesh VirtualService: its split for each host must say the same.
  const splitOf = (routes: Obj[], host: string) =>
    routes
      .filter((r) => (r.route ?? []).some((d: Obj) => shortHost(d.destination?.host) === host))
      .filter((r) => (r.route ?? []).every((d: Obj) => [undefined, grpcPort(services.get(host))].includes(d.destination?.port?.number))) // the RPCs' routes
      .map((r) => ({
        header: JSON.stringify((r.match ?? []).map((m: Obj) => m.headers ?? null).find((h: Obj | null) => h) ?? null),
        faulted: Boolean(r.fault),
        weights: JSON.stringify(
          (r.route ?? [])
            .map((d: Obj) => [d.destination?.subset ?? "", d.weight ?? 100])
            .sort((a: [string, number], b: [string, number]) => a[0].localeCompare(b[0])),
        ),
      }))
      .filter((r) => !r.faulted);
  for (const gw of vss.filter((m) => isGatewayVs(m.obj))) {
    for (const mesh of vss.filter((m) => !isGatewayVs(m.obj))) {
      const host = shortHost(mesh.obj.spec?.hosts?.[0]);
      if (!(mesh.obj.spec?.http ?? []).some((r: Obj) => (r.route ?? []).some((d: Obj) => d.destination?.subset))) continue;
      const want = new Set(splitOf(mesh.obj.spec.http, host).map((r) => `${r.header} -> ${r.weights}`));
      const got = new Set(splitOf(gw.obj.spec?.http ?? [], host).map((r) => `${r.header} -> ${r.weights}`));
      if ([...want].some((w) => !got.has(w)) || [...got].some((g) => !want.has(g)))
        problems.push({
          file: gw.file,
          message: `${describe(gw.obj)}: routes ${host} as ${[...got].join("; ")}, but ${describe(mesh.obj)} (${mesh.file}) routes it as ${[...want].join("; ")}; a gateway uses only its own VirtualService, so keep them the same`,
        });
    }
  }
  return problems;
}

/** Hosts and subsets of VirtualServices/DestinationRules outside the base (the base ones are checked with the manifests). */
function checkHostsAndSubsets(cluster: Cluster, objects: Manifest[], all: Manifest[]): Problem[] {
  const problems: Problem[] = [];
  const subsets = new Map<string, Set<string>>();
  for (const m of all.filter((x) => x.obj.kind === "DestinationRule"))
    subsets.set(shortHost(m.obj.spec?.host), new Set((m.obj.spec?.subsets ?? []).map((s: Obj) => s.name)));
  for (const { file, obj } of objects) {
    const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
    if (obj.kind === "DestinationRule") {
      const host = shortHost(obj.spec?.host);
      if (!cluster.services.has(host)) say(`spec.host: ${obj.spec?.host} has no Service`);
      const selector = cluster.services.get(host)?.obj.spec?.selector ?? {};
      for (const s of obj.spec?.subsets ?? [])
        if (!cluster.workloads.some((w) => matchesLabels({ ...selector, ...(s.labels ?? {}) }, w.labels)))
          say(`spec.subsets ${s.name}: labels ${JSON.stringify(s.labels ?? {})} select no Deployment of ${host}`);
    }
    if (obj.kind === "VirtualService") {
      if (!isGatewayVs(obj)) for (const h of obj.spec?.hosts ?? []) if (!cluster.services.has(shortHost(h))) say(`spec.hosts: ${h} has no Service`);
      (obj.spec?.http ?? []).forEach((route: Obj, i: number) => {
        for (const d of route.route ?? []) {
          const host = shortHost(d.destination?.host);
          if (!cluster.services.has(host)) say(`spec.http[${i}].route destination ${d.destination?.host} has no Service`);
          else if (d.destination?.subset && !subsets.get(host)?.has(d.destination.subset))
            say(`spec.http[${i}].route destination subset ${d.destination.subset} of ${host} is defined by no DestinationRule`);
        }
      });
    }
  }
  return problems;
}

function parseFile(root: string, file: string, problems: Problem[]): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(readFileSync(join(root, file), "utf8"))) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ file, message: `YAML: ${e.message.split("\n")[0]}` });
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    if (typeof obj !== "object" || Array.isArray(obj)) problems.push({ file, message: "a document is not a mapping (apiVersion, kind, ...)" });
    else out.push(obj);
  }
  return out;
}

/** The experiment files: mesh/experiments/*.yaml but their kustomization and the runner's *.hypothesis.yaml. */
export function experimentFiles(root: string): string[] {
  const dir = join(root, "mesh", "experiments");
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f) && !/^kustomization\.ya?ml$|\.hypothesis\.ya?ml$/.test(f))
        .sort()
        .map((f) => `mesh/experiments/${f}`)
    : [];
}

const ISTIO_GROUP = /\.istio\.io\//;

/**
 * Each experiment file parses, validates, and replaces base resources by kind and name (never a second
 * VirtualService or DestinationRule for a host); the cluster with it applied still passes the route checks.
 */
function checkExperiments(
  root: string,
  base: Manifest[],
  validate: (file: string, obj: Obj) => Problem[],
  cluster: Cluster,
  code: Map<string, CodeFile[]>,
  baseRoutes: Problem[],
): Problem[] {
  const problems: Problem[] = [];
  const key = (o: Obj) => `${o.kind}/${o.metadata?.name}`;
  const byKey = new Map(base.map((m) => [key(m.obj), m]));
  const known = new Set(baseRoutes.map((p) => `${p.file}\0${p.message}`));
  for (const file of experimentFiles(root)) {
    const mine: Manifest[] = [];
    for (const obj of parseFile(root, file, problems)) {
      const say = (message: string) => problems.push({ file, message: `${describe(obj)}: ${message}` });
      problems.push(...validate(file, obj));
      const original = byKey.get(key(obj));
      // The runner runs `kubectl apply -f <file>` without -n: without this the objects would land in the
      // context's default namespace, next to nothing they are meant to replace.
      if (obj.metadata?.namespace !== NAMESPACE) say(`metadata.namespace must be ${NAMESPACE} (the file is applied with kubectl apply -f, without -n)`);
      if (ISTIO_GROUP.test(String(obj.apiVersion))) {
        if (!original)
          say(`replaces no base resource (no ${obj.kind} named ${obj.metadata?.name} in mesh/base): an experiment must reuse a base name, one per host`);
        else if (obj.kind === "VirtualService" && JSON.stringify(obj.spec?.hosts) !== JSON.stringify(original.obj.spec?.hosts))
          say(`spec.hosts ${JSON.stringify(obj.spec?.hosts)} differ from the base's ${JSON.stringify(original.obj.spec?.hosts)} (${original.file})`);
        else if (obj.kind === "DestinationRule" && obj.spec?.host !== original.obj.spec?.host)
          say(`spec.host ${obj.spec?.host} differs from the base's ${original.obj.spec?.host} (${original.file})`);
      }
      const knob = obj.metadata?.annotations?.[FAULT_KNOB];
      if (knob !== undefined) {
        try {
          const k = JSON.parse(knob);
          if (!cluster.services.has(k.service)) say(`metadata.annotations ${FAULT_KNOB}: service ${k.service} has no Service`);
          parseFaults(k.faults ?? {});
        } catch (err) {
          say(`metadata.annotations ${FAULT_KNOB}: ${(err as Error).message}`);
        }
      }
      mine.push({ file, obj });
    }
    const replaced = new Set(mine.map((m) => key(m.obj)));
    const applied = [...base.filter((m) => !replaced.has(key(m.obj))), ...mine];
    problems.push(...checkHostsAndSubsets(cluster, mine, applied));
    // Route problems the base does not already have come from this file (directly, or by disagreeing with the base).
    for (const p of checkRoutes(code, applied))
      if (!known.has(`${p.file}\0${p.message}`)) problems.push(p.file === file ? p : { file, message: `applied over the base: ${p.file}: ${p.message}` });
  }
  return problems;
}
