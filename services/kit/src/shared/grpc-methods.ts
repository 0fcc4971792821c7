// What the grpc-js server adapter and the grpc-js client transport both need: a protobuf-es method as grpc-js
// sees it (path and serializers). Shared, so neither side of the kit imports the other.
import { type DescMethod, fromBinary, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

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
