// Serves Connect ServiceImpl handlers on a @grpc/grpc-js server (the faster wire engine here, see docs/architecture.md).
import { create, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextValues, createServiceImplSpec, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "#gen/google/rpc/status_pb.js";
import { peerAddress, peerKey, principalKey, serverStoppingKey } from "../shared/context.js";
import { toConnectError } from "../shared/errors.js";
import { methodDefinition } from "../shared/grpc-methods.js";
import { headersToMetadata, metadataToHeaders } from "../shared/metadata.js";
import { callerPrincipal } from "./mesh-security.js";

export type AnyServiceImpl = Partial<ServiceImpl<DescService>>;

/**
 * What the server-side deserializer hands on when the request bytes are not a valid message (truncated,
 * wrong wire type, invalid UTF-8 in a proto3 string). grpc-js would answer a throwing deserializer with
 * INTERNAL; it is the caller's input that is wrong, so the handler answers INVALID_ARGUMENT instead.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** The server's view of a method: like methodDefinition, but bad request bytes become an UndecodableRequest. */
function serverMethodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  const def = methodDefinition(method);
  return {
    ...def,
    requestDeserialize: (b: Buffer) => {
      try {
        return fromBinary(method.input, b);
      } catch (err) {
        return new UndecodableRequest((err as Error).message);
      }
    },
  };
}

function undecodable(method: DescMethod, request: UndecodableRequest): Partial<grpc.StatusObject> {
  return toGrpcStatus(new ConnectError(`request is not a valid ${method.input.typeName} message: ${request.reason}`, Code.InvalidArgument));
}

/** A ConnectError as a grpc-js status: code, message, its metadata and google.rpc.Status details. */
export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = toConnectError(err);
  const metadata = headersToMetadata(e.metadata);
  const details = e.details.map((d) =>
    "desc" in d
      ? anyPack(d.desc, create(d.desc, d.value))
      : { $typeName: "google.protobuf.Any" as const, typeUrl: `type.googleapis.com/${d.type}`, value: d.value },
  );
  if (details.length > 0) {
    const status = create(StatusSchema, { code: e.code, message: e.rawMessage, details });
    metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  }
  return { code: e.code as number as grpc.status, details: e.rawMessage, metadata };
}

function remainingMs(deadline: grpc.Deadline): number | undefined {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** ctx.signal's reason once the reply is sent: constant, so ending a call allocates no error (or DOMException). */
const CALL_OVER = new ConnectError("the call is over", Code.Canceled);
const timedOut = () => new ConnectError("the operation timed out", Code.DeadlineExceeded);

/**
 * The Connect handler context of a grpc-js call, built by hand rather than with createHandlerContext: that one
 * links three more AbortControllers (deadline, request, shutdown: a listener on the server-wide shutdown signal
 * per call) and copies the request headers again; here one controller per call is aborted by the deadline
 * timer, by the caller leaving, or by the server's shutdown (through `inFlight`, one listener per server).
 * `finish` must run once the reply is sent: it ends ctx.signal (work still tied to the call stops) and the
 * deadline timer, and from then on grpc-js's "cancelled" event (which it also emits after a normal end) is no
 * longer taken for the caller leaving.
 */
function contextFor(service: DescService, method: DescMethod, url: string, call: AnyCall, inFlight: Set<AbortController>, shutdownSignal: AbortSignal) {
  const controller = new AbortController();
  const remaining = remainingMs(call.getDeadline());
  let timer: NodeJS.Timeout | undefined;
  let deadline: number | undefined;
  if (remaining !== undefined) {
    deadline = Date.now() + remaining;
    if (remaining <= 0) controller.abort(timedOut());
    else timer = setTimeout(() => controller.abort(timedOut()), remaining);
  }
  const onCancelled = () => controller.abort(new ConnectError("the caller cancelled", Code.Canceled));
  call.once("cancelled", onCancelled);
  inFlight.add(controller);
  const ctx: HandlerContext = {
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url,
    signal: controller.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    requestHeader: metadataToHeaders(call.metadata),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: createContextValues()
      .set(peerKey, peerAddress(call.getPeer()))
      .set(principalKey, callerPrincipal(call) ?? "")
      .set(serverStoppingKey, shutdownSignal),
  };
  const finish = () => {
    clearTimeout(timer);
    call.removeListener("cancelled", onCancelled);
    inFlight.delete(controller);
    controller.abort(CALL_OVER); // no-op when already aborted
  };
  return { ctx, finish };
}

/** Registers `impl` for `service` on a grpc-js server; the interceptors run around every handler. */
export function addConnectService(
  server: grpc.Server,
  service: DescService,
  impl: AnyServiceImpl,
  interceptors: Interceptor[],
  shutdownSignal: AbortSignal,
): void {
  const spec = createServiceImplSpec(service, impl as ServiceImpl<DescService>);
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  // Past the grace period the server's shutdown cancels every call still running.
  const inFlight = new Set<AbortController>();
  const cancelAll = () => {
    for (const c of inFlight) c.abort(shutdownSignal.reason);
  };
  if (shutdownSignal.aborted) cancelAll();
  else shutdownSignal.addEventListener("abort", cancelAll, { once: true });
  for (const method of service.methods) {
    definition[method.localName] = serverMethodDefinition(method);
    const url = definition[method.localName].path;
    const methodSpec = spec.methods[method.localName];
    if (method.methodKind === "unary") {
      handlers[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (call.request instanceof UndecodableRequest) return callback(undecodable(method, call.request));
        const { ctx, finish } = contextFor(service, method, url, call, inFlight, shutdownSignal);
        invokeUnaryImplementation(methodSpec as never, ctx, call.request as never, interceptors)
          .then(
            (out) => {
              sendHeader(call, ctx.responseHeader);
              callback(null, out, headersToMetadata(ctx.responseTrailer));
            },
            (err) => {
              sendHeader(call, ctx.responseHeader);
              callback(toGrpcStatus(err));
            },
          )
          .finally(finish);
      };
    } else if (method.methodKind === "server_streaming") {
      handlers[method.localName] = async (call: grpc.ServerWritableStream<unknown, unknown>) => {
        if (call.request instanceof UndecodableRequest) return void call.emit("error", undecodable(method, call.request));
        const { ctx, finish } = contextFor(service, method, url, call, inFlight, shutdownSignal);
        try {
          const outputs = transformInvokeImplementation(methodSpec as never, ctx, interceptors)(createAsyncIterable([call.request]) as never);
          let first = true;
          for await (const out of outputs) {
            if (first) sendHeader(call, ctx.responseHeader);
            first = false;
            if (!call.write(out)) await new Promise((r) => call.once("drain", r));
          }
          if (first) sendHeader(call, ctx.responseHeader);
          call.end(headersToMetadata(ctx.responseTrailer));
        } catch (err) {
          call.emit("error", toGrpcStatus(err));
        } finally {
          finish();
        }
      };
    } else {
      handlers[method.localName] = (_call: unknown, callback?: grpc.sendUnaryData<unknown>) => {
        const status = { code: grpc.status.UNIMPLEMENTED, details: "client and bidi streaming are not served by the grpc-js adapter" };
        if (callback) callback(status);
      };
    }
  }
  server.addService(definition, handlers);
}

function sendHeader(call: AnyCall, header: Headers) {
  const md = headersToMetadata(header);
  if (Object.keys(md.getMap()).length > 0) call.sendMetadata(md);
}
