// Monolith mode's transport: clients that call handlers in this process through Connect's router transport,
// with the same server interceptors as a network server and the same client interceptors as a clientPool()'s, without a
// socket. The one module where the kit's two sides meet: it serves (server side) what clients call (client side).
import { createRouterTransport, type Interceptor, type Transport } from "@connectrpc/connect";
import { clientInterceptors } from "./client/dial.js";
import { interceptorsOf, type ServiceEntry } from "./server/serve.js";

/** A transport calling `entries` in memory; hand it to the code that would dial them (buildOrders' `peers`). */
export function inMemoryTransport(entries: ServiceEntry[], serverInterceptors: Interceptor[]): Transport {
  return createRouterTransport(
    (router) => {
      for (const e of entries) router.service(e.service, e.impl, { interceptors: interceptorsOf(e, serverInterceptors) });
    },
    { router: { interceptors: serverInterceptors }, transport: { interceptors: clientInterceptors() } },
  );
}
