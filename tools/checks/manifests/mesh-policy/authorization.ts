// Who may call what: every AuthorizationPolicy names real ServiceAccounts, RPCs and ports, and every edge the
// local mesh cannot run (HTTP to identity's JWKS, TCP to MongoDB) is allowed for its caller. The gRPC calls are
// proven by calls instead: test/mesh-security.test.ts, through real istiod enforcing mesh/base/authorization.yaml.
import { describe, type Obj, type Problem } from "../types.js";
import { authorize, type Request, stringMatch } from "./authorize.js";
import {
  backends,
  type Cluster,
  INGRESS_PRINCIPAL,
  inMeshNamespace,
  matchesLabels,
  NAMESPACE,
  parseTarget,
  policiesIn,
  principalOf,
  type Workload,
} from "./cluster.js";
import { type CodeFile, callGraph, RPCS, rpcByPath } from "./code.js";

/** Every principal is an existing ServiceAccount (or the ingress gateway's), every path an RPC in the protos, every port a container port. */
export function checkAuthorizationPolicies(cluster: Cluster): Problem[] {
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
export function checkCallsAllowed(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
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
