// Routes: retries only where an RPC is declared safe to repeat (meshmart.dev/retry-safe), a route to a
// several-port Service names and matches its port, and the gateway splits each host as the mesh does.
import { describe, type Manifest, type Obj, type Problem } from "../types.js";
import { grpcPort, isGatewayVs, shortHost } from "./cluster.js";
import { type CodeFile, RPCS, type Rpc, rpcByPath, servedBy, servicesByName } from "./code.js";

export const RETRY_SAFE = "meshmart.dev/retry-safe";
/** retryOn conditions after which the call never reached the app: safe to retry for any RPC. */
const ALWAYS_SAFE_RETRY = new Set(["connect-failure", "refused-stream", "reset-before-request"]);
/** What Istio retries when a route has no `retries` block. */
const ISTIO_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/**
 * The RPCs an HTTP route can receive (in order, a route with only uri and port conditions consumes the RPCs it
 * matches). `port` is the port the RPCs arrive on (the host's gRPC port); unknown (a gateway's routes), a port
 * condition may or may not hold, so it consumes nothing.
 */
export function routesFor(vs: Obj, candidates: Rpc[], port?: number): Map<string, number[]> {
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
export function checkRoutes(code: Map<string, CodeFile[]>, manifests: Manifest[]): Problem[] {
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
