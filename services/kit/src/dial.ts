// Typed Connect clients on grpc-js channels (or in memory, for the monolith), with the kit's client interceptors.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "./grpc-transport.js";
import { clientMetrics } from "./interceptors.js";
import { interceptorsOf, type ServiceEntry } from "./serve.js";
import { clientSpans } from "./tracing-rpc.js";

const transports = new Map<string, Transport & { close?(): void }>();
let inMemory: Transport | undefined;

/** A client for `service` at `target` ("host:port", "http://host:port", "dns:///...", "xds:///..."). One channel per target. */
export function dial<S extends DescService>(service: S, target: string, opts: { interceptors?: Interceptor[]; timeoutMs?: number } = {}): Client<S> {
  if (inMemory) return createClient(service, inMemory);
  let transport = transports.get(target);
  if (!transport || opts.interceptors || opts.timeoutMs) {
    transport = createGrpcTransport({
      target,
      interceptors: [clientMetrics(), ...clientSpans(), ...(opts.interceptors ?? [])],
      defaultTimeoutMs: opts.timeoutMs,
    });
    if (!opts.interceptors && !opts.timeoutMs) transports.set(target, transport);
  }
  return createClient(service, transport);
}

/** Closes every channel `dial` opened. */
export function closeClients(): void {
  for (const t of transports.values()) t.close?.();
  transports.clear();
}

/**
 * Monolith mode: from now on `dial` returns clients that call these handlers in memory (Connect's router
 * transport), with the same server interceptors, instead of going over the network.
 */
export function useInMemoryTransport(entries: ServiceEntry[], serverInterceptors: Interceptor[]): Transport {
  inMemory = createRouterTransport(
    (router) => {
      for (const e of entries) router.service(e.service, e.impl, { interceptors: interceptorsOf(e, serverInterceptors) });
    },
    { router: { interceptors: serverInterceptors }, transport: { interceptors: [clientMetrics(), ...clientSpans()] } },
  );
  return inMemory;
}

/** Back to real channels (undoes useInMemoryTransport). */
export function useNetworkTransport(): void {
  inMemory = undefined;
}
