// Server reflection (v1 and v1alpha) via @grpc/reflection, fed with protobuf-es file descriptors.
import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { file_google_rpc_error_details } from "#gen/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "#gen/google/rpc/status_pb.js";
import { file_grpc_reflection_v1_reflection } from "#gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "#gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_health_v1_health } from "#gen/health/v1/health_pb.js";

function withDependencies(file: DescFile, into: Map<string, DescFile>) {
  if (into.has(file.name)) return;
  into.set(file.name, file);
  for (const dep of file.dependencies) withDependencies(dep, into);
}

/** The services' files, health, reflection, google.rpc details, and all their imports. */
export function reflectedFiles(services: DescService[]): DescFile[] {
  const files = new Map<string, DescFile>();
  for (const s of services) withDependencies(s.file, files);
  // error_details and status too, so grpcurl can print the google.rpc details of an error.
  for (const f of [
    file_google_rpc_error_details,
    file_google_rpc_status,
    file_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ])
    withDependencies(f, files);
  return [...files.values()];
}

/** The serialized FileDescriptorProtos of reflectedFiles. */
export function fileDescriptorProtos(services: DescService[]): Buffer[] {
  return reflectedFiles(services).map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
}

/** Adds reflection v1 and v1alpha for `services` (plus health and reflection) to a grpc-js server. */
export function addReflection(server: grpc.Server, services: DescService[]): void {
  const fileDescriptorProtos_ = fileDescriptorProtos(services);
  // @grpc/reflection reads `fileDescriptorProtos` from every entry of a proto-loader package definition.
  const definition = { meshmart: { format: "Protocol Buffer 3 FileDescriptorProto", fileDescriptorProtos: fileDescriptorProtos_ } };
  new ReflectionService(definition as never).addToServer(server);
}
