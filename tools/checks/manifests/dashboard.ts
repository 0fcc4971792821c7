// The Grafana dashboard queries only metrics that exist: each name the kit's registry exports (its own gRPC
// metrics and prom-client's defaults) or an Istio standard metric, with only labels those metrics carry.
import { readFileSync } from "node:fs";
import { Histogram } from "prom-client";
import { registry } from "../../../services/kit/src/metrics.js";
import type { Obj, Problem } from "./types.js";

/**
 * Istio's standard metrics and their labels, as documented at
 * https://istio.io/latest/docs/reference/config/metrics/ (Istio 1.29). Histograms are listed by base name.
 */
export const ISTIO_METRICS: Record<string, "counter" | "histogram"> = {
  istio_requests_total: "counter",
  istio_request_duration_milliseconds: "histogram",
  istio_request_bytes: "histogram",
  istio_response_bytes: "histogram",
  istio_request_messages_total: "counter",
  istio_response_messages_total: "counter",
  istio_tcp_sent_bytes_total: "counter",
  istio_tcp_received_bytes_total: "counter",
  istio_tcp_connections_opened_total: "counter",
  istio_tcp_connections_closed_total: "counter",
};
export const ISTIO_LABELS = [
  "reporter",
  "source_workload",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_canonical_service",
  "source_canonical_revision",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_service_name",
  "destination_service_namespace",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_cluster",
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
];
/** Labels Prometheus adds when it scrapes a pod (Istio's Prometheus addon: pod labels, namespace, pod). */
export const SCRAPE_LABELS = ["namespace", "pod", "app", "version", "instance", "job"];

interface MetricInfo {
  labels: string[];
  source: string;
}

/** Every series name the kit's /metrics serves, with its labels (histograms as _bucket, _sum, _count). */
export function kitMetrics(): Map<string, MetricInfo> {
  const out = new Map<string, MetricInfo>();
  for (const m of registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]) {
    const labels = [...(m.labelNames ?? []), ...SCRAPE_LABELS];
    if (m instanceof Histogram) {
      out.set(`${m.name}_bucket`, { labels: [...labels, "le"], source: "the kit" });
      for (const suffix of ["_sum", "_count"]) out.set(`${m.name}${suffix}`, { labels, source: "the kit" });
    } else out.set(m.name, { labels, source: "the kit" });
  }
  return out;
}

export function istioMetrics(): Map<string, MetricInfo> {
  const out = new Map<string, MetricInfo>();
  for (const [name, type] of Object.entries(ISTIO_METRICS)) {
    const info = { labels: [...ISTIO_LABELS, ...SCRAPE_LABELS], source: "Istio" };
    if (type === "histogram") {
      out.set(`${name}_bucket`, { ...info, labels: [...info.labels, "le"] });
      out.set(`${name}_sum`, info);
      out.set(`${name}_count`, info);
    } else out.set(name, info);
  }
  return out;
}

/** The selectors of a PromQL expression: `name{label="v", ...}` (the dashboard always writes braces). */
function selectors(expr: string): { metric: string; labels: string[] }[] {
  return [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)].map(([, metric, body]) => ({
    metric,
    labels: [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]),
  }));
}

/** Labels named in `by (...)` / `without (...)` clauses. */
function groupings(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap(([, list]) =>
    list
      .split(",")
      .map((l) => l.trim())
      .filter(Boolean),
  );
}

export function checkDashboard(file: string, dashboard: Obj, known = new Map([...kitMetrics(), ...istioMetrics()])): Problem[] {
  const problems: Problem[] = [];
  const panels: Obj[] = (dashboard.panels ?? []).flatMap((p: Obj) => [p, ...(p.panels ?? [])]);
  let queries = 0;
  for (const panel of panels) {
    for (const target of panel.targets ?? []) {
      const expr = String(target.expr ?? "");
      const at = `panel "${panel.title}" query ${target.refId}`;
      const found = selectors(expr);
      if (found.length === 0) problems.push({ file, message: `${at}: no metric selector (write name{...})` });
      queries++;
      const labelsHere = new Set<string>();
      for (const { metric, labels } of found) {
        const info = known.get(metric);
        if (!info) {
          problems.push({ file, message: `${at}: metric ${metric} is neither exported by the kit nor an Istio standard metric` });
          continue;
        }
        for (const l of labels) if (!info.labels.includes(l)) problems.push({ file, message: `${at}: ${metric} has no label ${l}` });
        for (const l of info.labels) labelsHere.add(l);
      }
      for (const l of groupings(expr))
        if (labelsHere.size > 0 && !labelsHere.has(l)) problems.push({ file, message: `${at}: groups by ${l}, a label none of its metrics has` });
    }
  }
  if (queries === 0) problems.push({ file, message: "the dashboard has no queries" });
  return problems;
}

export function checkDashboardFile(root: string, file: string): Problem[] {
  let dashboard: Obj;
  try {
    dashboard = JSON.parse(readFileSync(`${root}/${file}`, "utf8"));
  } catch (err) {
    return [{ file, message: `not JSON: ${(err as Error).message}` }];
  }
  return checkDashboard(file, dashboard);
}
