// A server span around every RPC a service answers and a client span around every RPC it makes, as Connect
// interceptors, so the grpc-js adapter, the connect-node engine and the monolith's in-memory transport all
// trace alike. Attributes follow the OpenTelemetry RPC conventions (rpc.system.name, rpc.method,
// rpc.status_code) plus rpc.grpc.status_code, the number older back-ends (Jaeger) show.
import { Code, type Interceptor } from "@connectrpc/connect";
import { context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { peerKey } from "./context.js";
import { toConnectError } from "./errors.js";
import { withOutcome } from "./outcome.js";
import { kitTracing, TRACE_HEADERS, type TracingAttributes } from "./tracing.js";

const getter = {
  get: (h: Headers, key: string) => h.get(key) ?? undefined,
  keys: (h: Headers) => [...h.keys()],
};
const setter = { set: (h: Headers, key: string, value: string) => h.set(key, value) };

/** "DEADLINE_EXCEEDED" for Code.DeadlineExceeded: the status names as gRPC spells them. */
function statusName(code: Code): string {
  return (Code[code] ?? "Unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

// Server side, the conventions count only these as the server's own failure (a declined card is the caller's).
const SERVER_ERRORS = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

function finish(a: TracingAttributes, span: Span, err: unknown, kind: "server" | "client") {
  // 0 is OK, which Connect's Code enum leaves out.
  const code: number = err === undefined ? 0 : toConnectError(err).code;
  span.setAttributes({ [a.rpcStatus]: code === 0 ? "OK" : statusName(code), "rpc.grpc.status_code": code });
  if (code !== 0 && (kind === "client" || SERVER_ERRORS.has(code)))
    span.setStatus({ code: SpanStatusCode.ERROR, message: `${statusName(code)}: ${toConnectError(err).rawMessage}` });
  span.end();
}

/** Server interceptors for tracing: [] when tracing is off, so an untraced call pays nothing. */
export function serverSpans(): Interceptor[] {
  const on = kitTracing();
  if (!on) return [];
  const { tracer, propagator, attributes: a } = on;
  return [
    (next) => async (req) => {
      if (req.service.typeName.startsWith("grpc.")) return next(req); // health and reflection: noise
      // A malformed traceparent or b3 header is ignored by the propagator: the call starts a new trace.
      const parent = propagator.extract(ROOT_CONTEXT, req.header, getter);
      const method = `${req.service.typeName}/${req.method.name}`;
      const peer = req.contextValues.get(peerKey);
      const span = tracer.startSpan(
        method,
        {
          kind: SpanKind.SERVER,
          attributes: { [a.rpcSystem]: "grpc", [a.rpcMethod]: method, ...(peer ? { [a.peerAddress]: peer } : {}) },
        },
        parent,
      );
      return withOutcome(
        () => context.with(trace.setSpan(parent, span), () => next(req)),
        (error) => finish(a, span, error, "server"),
      );
    },
  ];
}

/** Client interceptors for tracing (a span per outgoing call, its context written into the headers); [] when off. */
export function clientSpans(): Interceptor[] {
  const on = kitTracing();
  if (!on) return [];
  const { tracer, propagator, attributes: a } = on;
  return [
    (next) => async (req) => {
      const method = `${req.service.typeName}/${req.method.name}`;
      // host:port targets only: for dns:/// and xds:/// ones the URL's host is the scheme, not the server.
      const url = URL.canParse(req.url) && !/^https?:\/\/[^/]+\/\//.test(req.url) ? new URL(req.url) : undefined;
      const span = tracer.startSpan(method, {
        kind: SpanKind.CLIENT,
        attributes: {
          [a.rpcSystem]: "grpc",
          [a.rpcMethod]: method,
          ...(url?.hostname ? { [a.serverAddress]: url.hostname } : {}),
          ...(url?.port ? { [a.serverPort]: Number(url.port) } : {}),
        },
      });
      // The headers forwarded from the incoming call name its parent; this call's parent is this span.
      for (const h of TRACE_HEADERS) req.header.delete(h);
      propagator.inject(trace.setSpan(context.active(), span), req.header, setter);
      return withOutcome(
        () => next(req),
        (error) => finish(a, span, error, "client"),
      );
    },
  ];
}
