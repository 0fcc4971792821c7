// Serves Connect ServiceImpl handlers on a @grpc/grpc-js server (the faster wire engine here, see docs/architecture.md).
import { create, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextValues, createHandlerContext, createServiceImplSpec, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "#gen/google/rpc/status_pb.js";
import { peerAddress, peerKey, principalKey } from "./context.js";
import { toConnectError } from "./errors.js";
import { callerPrincipal } from "./mesh-security.js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

export type AnyServiceImpl = Partial<ServiceImpl<DescService>>;

/** grpc-js serializers for a protobuf-es method. */
export function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (m) => Buffer.from(toBinary(method.input, m as never)),
    requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
    responseSerialize: (m) => Buffer.from(toBinary(method.output, m as never)),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
    originalName: method.localName,
  };
}

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

/**
 * The Connect handler context of a grpc-js call. `finish` must run once the reply is sent: it ends the
 * context (clearing its deadline timer) and, from then on, grpc-js's "cancelled" event (which it also emits
 * after a normal end) is no longer taken for the caller leaving.
 */
function contextFor(service: DescService, method: DescMethod, call: AnyCall, shutdownSignal: AbortSignal) {
  let replied = false;
  const cancelled = new AbortController();
  call.once("cancelled", () => {
    if (!replied) cancelled.abort(new ConnectError("the caller cancelled", Code.Canceled));
  });
  const ctx = createHandlerContext({
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${service.typeName}/${method.name}`,
    timeoutMs: remainingMs(call.getDeadline()),
    shutdownSignal,
    requestSignal: cancelled.signal,
    requestHeader: metadataToHeaders(call.metadata),
    contextValues: createContextValues()
      .set(peerKey, peerAddress(call.getPeer()))
      .set(principalKey, callerPrincipal(call) ?? ""),
  });
  const finish = () => {
    replied = true;
    ctx.abort(); // the call is over: ends ctx.signal for any work still tied to it, and the deadline timer
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
  for (const method of service.methods) {
    definition[method.localName] = serverMethodDefinition(method);
    const methodSpec = spec.methods[method.localName];
    if (method.methodKind === "unary") {
      handlers[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (call.request instanceof UndecodableRequest) return callback(undecodable(method, call.request));
        const { ctx, finish } = contextFor(service, method, call, shutdownSignal);
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
        const { ctx, finish } = contextFor(service, method, call, shutdownSignal);
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
  let any = false;
  header.forEach(() => {
    any = true;
  });
  if (any) call.sendMetadata(headersToMetadata(header));
}
