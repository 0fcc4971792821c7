// Server reflection v1 and v1alpha as Connect handlers, for the connect-node engine (@grpc/reflection is
// grpc-js only). Answers from the same protobuf-es descriptors the grpc-js engine feeds to @grpc/reflection.
import { createRegistry, type DescExtension, type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ReflectionV1, type ServerReflectionRequest } from "#gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1alpha } from "#gen/grpc/reflection/v1alpha/reflection_pb.js";
import { reflectedFiles } from "./reflection.js";

type Answer = Record<string, unknown>;

function extensionsOf(files: DescFile[]): DescExtension[] {
  const out: DescExtension[] = [];
  const walk = (m: DescMessage) => {
    out.push(...m.nestedExtensions);
    m.nestedMessages.forEach(walk);
  };
  for (const f of files) {
    out.push(...f.extensions);
    f.messages.forEach(walk);
  }
  return out;
}

/** The reflection answerer over the services' files and their imports. */
export function reflectionAnswers(services: DescService[]) {
  const files = reflectedFiles(services);
  const registry = createRegistry(...files);
  const byName = new Map(files.map((f) => [f.name, f]));
  const extensions = extensionsOf(files);
  const serviceNames = files.flatMap((f) => f.services.map((s) => s.typeName));

  const withImports = (file: DescFile): Uint8Array[] => {
    const seen = new Map<string, DescFile>();
    const add = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.set(f.name, f);
      f.dependencies.forEach(add);
    };
    add(file);
    return [...seen.values()].map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
  };
  const notFound = (what: string): Answer => ({ case: "errorResponse", value: { errorCode: 5, errorMessage: `${what} not found` } });
  const fileOf = (file: DescFile | undefined, what: string): Answer =>
    file ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withImports(file) } } : notFound(what);

  return (req: Pick<ServerReflectionRequest, "messageRequest">): Answer => {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
      case "fileByFilename":
        return fileOf(byName.get(r.value), `file ${r.value}`);
      case "fileContainingSymbol": {
        const symbol = r.value;
        const desc = registry.get(symbol) ?? registry.getService(symbol.slice(0, symbol.lastIndexOf("."))); // a method: pkg.Service.Method
        return fileOf(desc?.file, `symbol ${symbol}`);
      }
      case "fileContainingExtension": {
        const ext = extensions.find((e) => e.extendee.typeName === r.value.containingType && e.number === r.value.extensionNumber);
        return fileOf(ext?.file, `extension ${r.value.extensionNumber} of ${r.value.containingType}`);
      }
      case "allExtensionNumbersOfType":
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: r.value, extensionNumber: extensions.filter((e) => e.extendee.typeName === r.value).map((e) => e.number) },
        };
      default:
        return { case: "errorResponse", value: { errorCode: 3, errorMessage: "empty reflection request" } };
    }
  };
}

/** ServerReflection v1 and v1alpha implementations for a Connect router. */
export function connectReflectionImpls(services: DescService[]) {
  const answer = reflectionAnswers(services);
  async function* serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
    for await (const req of requests) yield { validHost: req.host, originalRequest: req, messageResponse: answer(req) as never };
  }
  return [
    { service: ReflectionV1, impl: { serverReflectionInfo } as ServiceImpl<typeof ReflectionV1> },
    { service: ReflectionV1alpha, impl: { serverReflectionInfo } as unknown as ServiceImpl<typeof ReflectionV1alpha> },
  ] as const;
}
