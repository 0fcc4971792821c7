// AuthorizationPolicy evaluation, offline: Istio's semantics for the fields meshmart uses (principals,
// namespaces, request principals, ports, methods, paths; DENY before ALLOW; HTTP-only fields on plain TCP).
import type { Obj } from "../types.js";
import { matchesLabels } from "./cluster.js";

export interface Request {
  principal?: string; // the caller's mTLS identity; none for a plaintext caller
  requestPrincipal?: string; // a valid JWT's iss/sub
  labels: Obj; // the callee pod's labels
  port: number; // the callee's container port
  http?: { method: string; path: string }; // absent for plain TCP
}

export function stringMatch(pattern: string, value: string | undefined): boolean {
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
