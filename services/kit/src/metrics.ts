// Prometheus metrics named like go-grpc-prometheus, so standard gRPC dashboards work unchanged.
import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

/** The process's metrics registry, served on the admin port at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const labels = ["grpc_type", "grpc_service", "grpc_method"] as const;
const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const serverStarted = new Counter({ name: "grpc_server_started_total", help: "RPCs started on the server.", labelNames: labels, registers: [registry] });
export const serverHandled = new Counter({
  name: "grpc_server_handled_total",
  help: "RPCs completed on the server, by status code.",
  labelNames: [...labels, "grpc_code"],
  registers: [registry],
});
export const serverSeconds = new Histogram({
  name: "grpc_server_handling_seconds",
  help: "Time the server took to handle an RPC.",
  labelNames: [...labels, "grpc_code"],
  buckets,
  registers: [registry],
});
export const clientStarted = new Counter({ name: "grpc_client_started_total", help: "RPCs started by clients.", labelNames: labels, registers: [registry] });
export const clientHandled = new Counter({
  name: "grpc_client_handled_total",
  help: "RPCs completed by clients, by status code.",
  labelNames: [...labels, "grpc_code"],
  registers: [registry],
});
export const clientSeconds = new Histogram({
  name: "grpc_client_handling_seconds",
  help: "Time from a client call to its status.",
  labelNames: [...labels, "grpc_code"],
  buckets,
  registers: [registry],
});

/** gRPC code name as go-grpc-prometheus prints it: "OK", "InvalidArgument", "Unavailable"... */
export function codeName(err: unknown): string {
  if (err === undefined) return "OK";
  const code = err instanceof ConnectError ? err.code : Code.Unknown;
  return Code[code] ?? "Unknown";
}

/** The labels of every RPC metric, from a Connect request (server or client side). */
export function methodLabels(req: { service: { typeName: string }; method: { name: string; methodKind: string } }) {
  return { grpc_type: req.method.methodKind, grpc_service: req.service.typeName, grpc_method: req.method.name };
}
