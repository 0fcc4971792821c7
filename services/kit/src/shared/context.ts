// What travels with a call: request id, trace and routing headers, the caller, and the deadline.
import { randomUUID } from "node:crypto";
import { type CallOptions, type ContextValues, createContextKey, type HandlerContext } from "@connectrpc/connect";

/** Headers copied from an incoming call onto every outgoing call (Istio cannot join spans otherwise). */
export const PROPAGATED_HEADERS = [
  "x-request-id",
  "traceparent",
  "tracestate",
  "baggage",
  "b3",
  "x-b3-traceid",
  "x-b3-spanid",
  "x-b3-parentspanid",
  "x-b3-sampled",
  "x-b3-flags",
  "x-ot-span-context",
  "x-canary",
] as const;

/** The propagated headers of the current call. */
export const propagatedKey = createContextKey<Headers>(new Headers(), { description: "propagated headers" });
/** The current call's request id (from x-request-id, or minted here). */
export const requestIdKey = createContextKey<string>("", { description: "request id" });
/** The address of the peer that opened the connection (a proxy's, behind one), without the port; "" when unknown. */
export const peerKey = createContextKey<string>("", { description: "peer address" });

/** The caller's mesh identity from its mTLS certificate ("cluster.local/ns/meshmart/sa/orders"); "" on plaintext. */
export const principalKey = createContextKey<string>("", { description: "caller's mesh principal" });

/** "127.0.0.1:5000", "::1:5000", "[::1]:5000", "ipv4:10.0.0.1:80", "::ffff:10.0.0.1" → the address alone. */
export function peerAddress(peer: string | undefined, hasPort = true): string {
  let p = (peer ?? "").replace(/^ipv[46]:/, "");
  if (hasPort) p = p.replace(/:\d+$/, "");
  return p.replace(/^\[(.*)\]$/, "$1").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1");
}

/** The verified caller, set by the auth interceptor. */
export const userKey = createContextKey<AuthUser | undefined>(undefined, { description: "authenticated user" });

export interface AuthUser {
  /** The token's `sub`: the user id. */
  id: string;
  /** The raw `authorization` header, forwarded only when asked. */
  authorization: string;
  email?: string;
}

const PROPAGATED = new Set<string>(PROPAGATED_HEADERS);

/** Copies the propagated headers into the call's context values; mints x-request-id when missing. */
export function capturePropagation(header: Headers, values: ContextValues): string {
  const out = new Headers();
  // One pass over what the caller sent (a few headers) rather than a lookup per propagated name (twelve).
  header.forEach((v, name) => {
    if (PROPAGATED.has(name)) out.set(name, v);
  });
  let id = out.get("x-request-id");
  if (!id) {
    id = randomUUID();
    out.set("x-request-id", id);
  }
  values.set(propagatedKey, out);
  values.set(requestIdKey, id);
  return id;
}

/** Default deadline of an outgoing call when the incoming call has none. */
/**
 * The server's shutdown, as a signal handlers can see: aborted once the grace period is over and the calls
 * still running are cancelled. Work that carries on past its caller (a saga's fresh-deadline steps) stops on
 * it at a step recovery can resume. Never aborted where no server sets it (the in-memory transport).
 */
export const serverStoppingKey = createContextKey<AbortSignal>(new AbortController().signal, { description: "server shutting down" });

export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Call options for a downstream call made while handling `ctx`: the caller's cancellation, a deadline that
 * is never longer than what is left of ours (less a small margin for the way back), and the propagated
 * headers. `authorization` is forwarded only with `{ authorization: true }`.
 */
export function forward(ctx: HandlerContext, opts: { authorization?: boolean; timeoutMs?: number } = {}): CallOptions {
  const headers = new Headers(ctx.values.get(propagatedKey));
  if (opts.authorization) {
    const auth = ctx.requestHeader.get("authorization");
    if (auth) headers.set("authorization", auth);
  }
  const remaining = ctx.timeoutMs();
  let timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (remaining !== undefined) {
    const margin = Math.min(50, remaining * 0.1);
    timeoutMs = Math.min(timeoutMs, Math.max(1, Math.floor(remaining - margin)));
  }
  return { signal: ctx.signal, timeoutMs, headers };
}

/** Call options for work that outlives the caller (compensation, recovery): fresh deadline, same trace. */
export function detached(ctx: HandlerContext | undefined, timeoutMs = DEFAULT_TIMEOUT_MS): CallOptions {
  const headers = ctx ? new Headers(ctx.values.get(propagatedKey)) : new Headers({ "x-request-id": randomUUID() });
  return { timeoutMs, headers };
}
