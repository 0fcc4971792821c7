// The ingress gateway: its Gateway selects Istio's default one, its routes lead to Services and ports that
// exist and serve the RPC, and "routed by the ingress" equals "allowed for the ingress".
import { describe, type Obj, type Problem } from "../types.js";
import { authorize, type Request } from "./authorize.js";
import { backends, type Cluster, INGRESS_LABELS, INGRESS_PRINCIPAL, isGatewayVs, matchesLabels, policiesIn, shortHost } from "./cluster.js";
import { type CodeFile, callGraph, RPCS, type Rpc, rpcByPath, servedBy, servicesByName } from "./code.js";
import { routesFor } from "./routes.js";

/** The gateway's routes lead to existing Services and ports, and "routed by the ingress" equals "allowed for the ingress". */
export function checkIngress(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
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
