// Prometheus metrics named like go-grpc-prometheus, so standard gRPC dashboards work unchanged.
import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

/** The process's metrics registry, served on the admin port at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const labels = ["grpc_type", "grpc_service", "grpc_method"] as const;
const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The three metrics of one side of an RPC: started, completed by code, and the time it took by code. */
function rpcMetrics(side: "server" | "client", help: { started: string; handled: string; seconds: string }) {
  return {
    started: new Counter({ name: `grpc_${side}_started_total`, help: help.started, labelNames: labels, registers: [registry] }),
    handled: new Counter({ name: `grpc_${side}_handled_total`, help: help.handled, labelNames: [...labels, "grpc_code"], registers: [registry] }),
    seconds: new Histogram({ name: `grpc_${side}_handling_seconds`, help: help.seconds, labelNames: [...labels, "grpc_code"], buckets, registers: [registry] }),
  };
}

export const {
  started: serverStarted,
  handled: serverHandled,
  seconds: serverSeconds,
} = rpcMetrics("server", {
  started: "RPCs started on the server.",
  handled: "RPCs completed on the server, by status code.",
  seconds: "Time the server took to handle an RPC.",
});
export const {
  started: clientStarted,
  handled: clientHandled,
  seconds: clientSeconds,
} = rpcMetrics("client", {
  started: "RPCs started by clients.",
  handled: "RPCs completed by clients, by status code.",
  seconds: "Time from a client call to its status.",
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
