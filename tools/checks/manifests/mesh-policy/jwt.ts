// JWT at the ingress: RequestAuthentication agrees with identity's and orders' configuration (issuer,
// audience, JWKS path and port, reachable by istiod in plaintext), and the gateway refuses the token-needing
// RPCs it routes when no token comes with them, but not the public ones.
import { join } from "node:path";
import { describe, type Obj, type Problem } from "../types.js";
import { authorize, type Request } from "./authorize.js";
import { backends, type Cluster, INGRESS_LABELS, isGatewayVs, matchesLabels, parseTarget, policiesIn } from "./cluster.js";
import { type CodeFile, RPCS, type Rpc, rpcByPath, tokenRequired } from "./code.js";
import { routesFor } from "./routes.js";

/** RequestAuthentication agrees with identity's and orders' configuration; token-needing RPCs are refused at the gateway without one. */
export function checkJwt(cluster: Cluster, code: Map<string, CodeFile[]>): Problem[] {
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
