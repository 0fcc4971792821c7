// Proxyless gRPC: `xds:///<host>:<port>` targets resolve through the xDS control plane (istiod) named in the
// process's bootstrap (GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG, see tools/stack/mesh/bootstrap.ts), which then
// drives routing, retries, timeouts, fault injection and load balancing as Envoy would in a sidecar.
// @grpc/grpc-js-xds is loaded (and registers its resolver and balancers with grpc-js) only the first time an
// xds target is dialled, so a process outside the mesh never pays for it.
// A mesh server (XdsServer, services/kit/src/server/mesh-server.ts) registers it the same way: without it, it refuses
// istiod's inbound listener.
import { createRequire } from "node:module";
import type * as grpc from "@grpc/grpc-js";

export interface XdsModule {
  register(): void;
  XdsServer: new (
    options?: grpc.ServerOptions,
  ) => grpc.Server & {
    addServingStateListener(port: string, listener: (status: grpc.StatusObject) => void): void;
  };
  XdsServerCredentials: new (fallback: grpc.ServerCredentials) => grpc.ServerCredentials;
  XdsChannelCredentials: new (fallback: grpc.ChannelCredentials) => grpc.ChannelCredentials;
}

let xds: XdsModule | undefined;

/** @grpc/grpc-js-xds, registered with grpc-js on first use (once per process). */
export function xdsModule(): XdsModule {
  if (!xds) {
    xds = createRequire(import.meta.url)("@grpc/grpc-js-xds") as XdsModule;
    xds.register();
  }
  return xds;
}

/** Registers grpc-js-xds with grpc-js, once per process. */
export function registerXds(): void {
  xdsModule();
}

export function isXdsTarget(target: string): boolean {
  return target.startsWith("xds:");
}
