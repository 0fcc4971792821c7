// Typed Connect clients on grpc-js channels, with the kit's client interceptors. A pool owns its channels, so
// whoever made it closes exactly those (orders' shutdown closes orders' channels, not a test's). There is no
// process-wide pool: every caller (a service, a tool, a test) makes its own and closes it.
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { clientSpans } from "../shared/tracing-rpc.js";
import { clientMetrics } from "./client-metrics.js";
import { createGrpcJsTransport } from "./grpc-transport.js";

export interface DialOptions {
  interceptors?: Interceptor[];
  timeoutMs?: number;
}

export interface ClientPool {
  /** A client for `service` at `target` ("host:port", "http://host:port", "dns:///...", "xds:///..."). One channel per target. */
  dial<S extends DescService>(service: S, target: string, opts?: DialOptions): Client<S>;
  /** Closes every channel this pool opened. */
  close(): void;
}

/** The interceptors every client of the kit runs: metrics, then the trace span (when tracing is on). */
export function clientInterceptors(): Interceptor[] {
  return [clientMetrics(), ...clientSpans()];
}

/**
 * A pool of clients. With `transport` (the monolith's in-memory one), every client goes through it whatever
 * the target, and the pool opens no channel.
 */
export function clientPool(opts: { transport?: Transport } = {}): ClientPool {
  const channels = new Map<string, Transport & { close(): void }>();
  const opened: (Transport & { close(): void })[] = [];
  return {
    dial(service, target, dialOpts = {}) {
      if (opts.transport) return createClient(service, opts.transport);
      const own = !!dialOpts.interceptors || !!dialOpts.timeoutMs;
      let transport = own ? undefined : channels.get(target);
      if (!transport) {
        transport = createGrpcJsTransport({
          target,
          interceptors: [...clientInterceptors(), ...(dialOpts.interceptors ?? [])],
          defaultTimeoutMs: dialOpts.timeoutMs,
        });
        if (own) opened.push(transport);
        else channels.set(target, transport);
      }
      return createClient(service, transport);
    },
    close() {
      for (const t of [...channels.values(), ...opened]) t.close();
      channels.clear();
      opened.length = 0;
    },
  };
}
