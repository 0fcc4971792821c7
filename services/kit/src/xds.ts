// Proxyless gRPC: `xds:///<host>:<port>` targets resolve through the xDS control plane (istiod) named in the
// process's bootstrap (GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG, see tools/mesh/bootstrap.ts), which then
// drives routing, retries, timeouts, fault injection and load balancing as Envoy would in a sidecar.
// @grpc/grpc-js-xds is loaded (and registers its resolver and balancers with grpc-js) only the first time an
// xds target is dialled, so a process outside the mesh never pays for it.
import { createRequire } from "node:module";

let registered = false;

/** Registers grpc-js-xds with grpc-js, once per process. */
export function registerXds(): void {
  if (registered) return;
  const xds = createRequire(import.meta.url)("@grpc/grpc-js-xds") as { register(): void };
  xds.register();
  registered = true;
}

export function isXdsTarget(target: string): boolean {
  return target.startsWith("xds:");
}
