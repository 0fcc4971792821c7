// A Connect Transport over @grpc/grpc-js channels: typed Connect clients with grpc-js on the wire
// (unary and server streaming; the services need nothing else). `xds:///` targets go through the mesh's
// control plane (xds.ts registers @grpc/grpc-js-xds on the first one), since the channel is grpc-js's own.
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodStreaming,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl, runStreamingCall } from "@connectrpc/connect/protocol";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "#gen/google/rpc/status_pb.js";
import { DEFAULT_TIMEOUT_MS } from "../shared/context.js";
import { methodDefinition } from "../shared/grpc-methods.js";
import { MAX_RECEIVE_BYTES_DEFAULT, MAX_SEND_BYTES_DEFAULT } from "../shared/message-limits.js";
import { headersToMetadata, metadataToHeaders } from "../shared/metadata.js";
import { isXdsTarget, xdsModule } from "../shared/xds.js";

export interface GrpcTransportOptions {
  /** "127.0.0.1:50052", "http://127.0.0.1:50052", "dns:///catalog:50051" or "xds:///catalog.meshmart.svc.cluster.local:50051". */
  target: string;
  interceptors?: Interceptor[];
  /** Deadline for calls that do not set one. */
  defaultTimeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

/**
 * Client channel defaults: keepalive pings find dead connections behind proxies and NATs; message limits
 * mirror the servers' (send what a server accepts, receive what a server may send — see serve.ts), so an
 * oversized message fails fast at the caller with RESOURCE_EXHAUSTED instead of crossing the network.
 * Reconnect backoff bounded to 1 s: grpc-js grows it up to 120 s by default, and while it waits every call
 * fails at once, so a peer back after a long outage went unnoticed for up to two minutes. A retry a second
 * against a peer that is down costs a refused connection on loopback or one SYN in a cluster.
 */
export const CLIENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 0,
  "grpc.initial_reconnect_backoff_ms": 250,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.max_send_message_length": MAX_RECEIVE_BYTES_DEFAULT,
  "grpc.max_receive_message_length": MAX_SEND_BYTES_DEFAULT,
};

/** Turns a grpc-js error (status, message, trailers, google.rpc.Status details) into a ConnectError. */
export function fromGrpcError(err: grpc.ServiceError): ConnectError {
  const trailer = metadataToHeaders(err.metadata);
  const raw = err.metadata?.get("grpc-status-details-bin")[0];
  const details = Buffer.isBuffer(raw)
    ? fromBinary(StatusSchema, raw).details.map((any) => ({ type: any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1), value: any.value }))
    : [];
  const error = new ConnectError(err.details, err.code as number as Code, trailer);
  error.details.push(...details.map((d) => ({ ...d, debug: undefined })));
  return error;
}

/** req.signal's reason once a call has its answer: constant, so ending a call allocates no error (or DOMException). */
const CALL_DONE = new ConnectError("the call is over", Code.Canceled);
const timedOut = () => new ConnectError("the operation timed out", Code.DeadlineExceeded);

type AnyUnaryFn = (req: UnaryRequest) => Promise<UnaryResponse>;

/** The interceptors around `next`, outermost first (what Connect's applyInterceptors does, done once, not per call). */
function chain(next: AnyUnaryFn, interceptors: Interceptor[] | undefined): AnyUnaryFn {
  let fn = next;
  for (const i of [...(interceptors ?? [])].reverse()) fn = i(fn as never) as unknown as AnyUnaryFn;
  return fn;
}

/** Channel credentials for an xds:/// target: mTLS with the workload certificate when istiod says ISTIO_MUTUAL. */
function xdsChannelCredentials(): grpc.ChannelCredentials {
  const { XdsChannelCredentials } = xdsModule();
  return new XdsChannelCredentials(grpc.credentials.createInsecure());
}

/**
 * A Connect transport on one grpc-js channel to `opts.target`. (Not connect-node's `createGrpcTransport`, which
 * speaks gRPC over node:http2 and cannot resolve `xds:///` targets.)
 */
export function createGrpcJsTransport(opts: GrpcTransportOptions): Transport & { close(): void } {
  const target = opts.target.replace(/^https?:\/\//, "");
  // An xds target is a mesh client: mTLS with the workload certificate wherever istiod says ISTIO_MUTUAL.
  const credentials = isXdsTarget(target) ? xdsChannelCredentials() : grpc.credentials.createInsecure();
  const client = new grpc.Client(target, credentials, { ...CLIENT_CHANNEL_OPTIONS, ...opts.channelOptions });
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  /** The call's own timeout, else the default; 0 or less means none. */
  const timeoutOf = (t: number | undefined) => {
    const ms = t ?? defaultTimeoutMs;
    return ms > 0 ? ms : undefined;
  };
  const callOptions = (timeoutMs: number | undefined): grpc.CallOptions => (timeoutMs ? { deadline: Date.now() + timeoutMs } : {});
  // grpc-js serializers and the URL of each method, made on its first call rather than on every call.
  const perMethod = new WeakMap<DescMethod, { def: grpc.MethodDefinition<unknown, unknown>; url: string }>();
  const methodOf = (method: DescMethod) => {
    let m = perMethod.get(method);
    if (!m) perMethod.set(method, (m = { def: methodDefinition(method), url: createMethodUrl(`http://${target}`, method) }));
    return m;
  };

  /** What a Connect request of either kind carries besides its message. */
  const requestOf = <M extends DescMethod>(method: M, url: string, header: HeadersInit | undefined, contextValues: ContextValues | undefined) => ({
    service: method.parent,
    method,
    requestMethod: "POST",
    url,
    header: new Headers(header),
    contextValues: contextValues ?? createContextValues(),
  });

  /** The call on the wire, for any unary method: what the interceptors wrap. */
  const wire: AnyUnaryFn = (req) =>
    new Promise((resolve, reject) => {
      const { def } = methodOf(req.method);
      let responseHeader = new Headers();
      let value: unknown;
      let failure: grpc.ServiceError | null = null;
      const call = client.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        req.message,
        headersToMetadata(req.header),
        callOptions((req as { timeoutMs?: number }).timeoutMs),
        (err, v) => {
          failure = err;
          value = v;
        },
      );
      const onAbort = () => call.cancel();
      req.signal.addEventListener("abort", onAbort, { once: true });
      call.on("metadata", (md) => {
        responseHeader = metadataToHeaders(md);
      });
      call.on("status", (status) => {
        req.signal.removeEventListener("abort", onAbort);
        if (req.signal.aborted) return reject(req.signal.reason);
        if (failure) return reject(fromGrpcError(failure));
        resolve({
          stream: false,
          service: req.method.parent,
          method: req.method,
          header: responseHeader,
          trailer: metadataToHeaders(status.metadata),
          message: value as never,
        } as UnaryResponse);
      });
    });
  const unaryChain = chain(wire, opts.interceptors);

  return {
    close: () => client.close(),
    /**
     * A unary call as Connect's runUnaryCall makes it (the interceptors, then the call, with req.signal aborted by
     * the caller's signal, the deadline or the end of the call), with less per call: the interceptor chain is
     * built once per transport, and one AbortController and one timer per call instead of two linked controllers,
     * a timer, and a DOMException when the call ends. Errors are ConnectErrors as before: the deadline's
     * DeadlineExceeded, the caller's abort reason as Canceled, the server's status.
     */
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const { url } = methodOf(method);
      timeoutMs = timeoutOf(timeoutMs);
      const controller = new AbortController();
      const onCallerAbort = () => controller.abort(signal?.reason);
      let timer: NodeJS.Timeout | undefined;
      if (signal?.aborted) onCallerAbort();
      else signal?.addEventListener("abort", onCallerAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => controller.abort(timedOut()), timeoutMs);
      const end = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onCallerAbort);
      };
      const req = {
        stream: false as const,
        ...requestOf(method, url, header, contextValues),
        message: create(method.input, input),
        signal: controller.signal,
        timeoutMs,
      };
      try {
        const res = await unaryChain(req as unknown as UnaryRequest);
        end();
        controller.abort(CALL_DONE);
        return res as unknown as UnaryResponse<I, O>;
      } catch (err) {
        const e = controller.signal.aborted ? ConnectError.from(controller.signal.reason, Code.Canceled) : ConnectError.from(err);
        end();
        controller.abort(e);
        throw e;
      }
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming")
        throw new ConnectError(`${method.methodKind} is not supported by the grpc-js transport`, Code.Unimplemented);
      const { def, url } = methodOf(method);
      timeoutMs = timeoutOf(timeoutMs);
      return runStreamingCall<I, O>({
        interceptors: opts.interceptors,
        signal,
        timeoutMs,
        req: { stream: true, ...requestOf(method, url, header, contextValues), message: input },
        next: async (req) => {
          let request: unknown;
          for await (const m of req.message) {
            request = m;
            break;
          }
          const call = client.makeServerStreamRequest(
            def.path,
            def.requestSerialize,
            def.responseDeserialize,
            request,
            headersToMetadata(req.header),
            callOptions(timeoutMs),
          );
          req.signal.addEventListener("abort", () => call.cancel(), { once: true });
          const responseHeader = await new Promise<Headers>((resolve, reject) => {
            call.once("metadata", (md) => resolve(metadataToHeaders(md)));
            call.once("error", (e: grpc.ServiceError) => reject(fromGrpcError(e)));
          });
          const trailer = new Headers();
          async function* messages() {
            try {
              for await (const m of call) yield m as never;
            } catch (e) {
              throw fromGrpcError(e as grpc.ServiceError);
            }
          }
          call.on("status", (s) => {
            for (const [k, v] of metadataToHeaders(s.metadata)) trailer.set(k, v);
          });
          return { stream: true, service: method.parent, method, header: responseHeader, trailer, message: messages() };
        },
      });
    },
  };
}
