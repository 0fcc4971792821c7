// Mesh mode's server side: the service's gRPC port served by grpc-js-xds's XdsServer, so istiod decides what
// it accepts (STRICT mTLS from PeerAuthentication, callers from AuthorizationPolicy, both enforced in this
// process as Envoy would in a sidecar), plus a plaintext "local" port outside the mesh with only health and
// reflection, for the tools on this machine (health waits, grpcurl list/describe), as a port-forward is on a
// cluster. Both share one Health, so the local port says what the mesh port does.
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../shared/log.js";
import { xdsModule } from "../shared/xds.js";

/** A server whose calls istiod's listener for `host:port` governs. */
export function createXdsServer(options: grpc.ServerOptions): grpc.Server {
  const { XdsServer } = xdsModule();
  return new XdsServer(options);
}

/**
 * Binds an XdsServer on host:port and resolves once istiod's inbound listener for it arrived and it serves.
 *
 * grpc-js-xds 1.14.1 listens on the port alone (every interface), though the listener it asks istiod for is
 * host:port. Local mesh workloads are told apart by address, like pods, so that would let two of them not share
 * a port, and whoever binds first take the port on every address. This binds the port entry's TCP server on
 * host:port first (it then skips its own listen) and fails clearly if it cannot; the internals it reaches are
 * checked, and test/mesh-security.test.ts fails if the port is bound on another address.
 */
export async function bindXdsServer(server: grpc.Server, host: string, port: number, log: Logger, timeoutMs: number): Promise<void> {
  if (!(port > 0)) throw new Error(`mesh mode needs a fixed gRPC port (PORT), got ${port}: istiod's listener is named by host:port`);
  const address = `${host}:${port}`;
  const { XdsServerCredentials } = xdsModule();
  let serving!: () => void;
  const ready = new Promise<void>((resolve) => (serving = resolve));
  server.bindAsync(address, new XdsServerCredentials(grpc.ServerCredentials.createInsecure()), (err) => {
    if (!err) serving();
  });
  const entry = (server as unknown as { boundPortMap?: Map<string, { tcpServer?: net.Server }> }).boundPortMap?.get(address);
  const tcp = entry?.tcpServer;
  if (!(tcp instanceof net.Server))
    throw new Error("mesh: @grpc/grpc-js-xds's XdsServer internals changed (no boundPortMap/tcpServer); see services/kit/src/server/mesh-server.ts");
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", (err: NodeJS.ErrnoException) => reject(new Error(`mesh port ${address}: ${err.code === "EADDRINUSE" ? "already in use" : err.message}`)));
    tcp.listen({ host, port }, () => resolve());
  });
  tcp.on("error", (err) => log.error({ err }, "mesh port error"));
  (server as unknown as { addServingStateListener(p: string, l: (s: grpc.StatusObject) => void): void }).addServingStateListener(address, (s) => {
    if (s.code === grpc.status.OK) log.info({ address }, "mesh port serving (istiod's inbound listener received)");
    else log.warn({ address, details: s.details }, "mesh port not serving");
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `mesh port ${address}: no inbound listener from istiod within ${timeoutMs} ms (is istiod at the bootstrap's xds_servers running, and is there a WorkloadEntry with address ${host} and this port?)`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
