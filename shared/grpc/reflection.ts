import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";
import { Code } from "../errors/index.js";
import { grpcServiceDefinition, type StreamingRegistration } from "./server.js";

/** The files a service's descriptors live in, and every symbol they declare. */
interface DescriptorIndex {
  services: string[];
  byFilename: Map<string, DescFile>;
  bySymbol: Map<string, DescFile>;
}

function indexMessage(message: DescMessage, file: DescFile, bySymbol: Map<string, DescFile>): void {
  bySymbol.set(message.typeName, file);
  for (const nested of message.nestedMessages) indexMessage(nested, file, bySymbol);
  for (const nested of message.nestedEnums) bySymbol.set(nested.typeName, file);
  for (const extension of message.nestedExtensions) bySymbol.set(extension.typeName, file);
}

function indexFiles(services: readonly DescService[]): DescriptorIndex {
  const byFilename = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const add = (file: DescFile) => {
    if (byFilename.has(file.proto.name)) return;
    byFilename.set(file.proto.name, file);
    for (const dependency of file.dependencies) add(dependency);
    for (const message of file.messages) indexMessage(message, file, bySymbol);
    for (const e of file.enums) bySymbol.set(e.typeName, file);
    for (const extension of file.extensions) bySymbol.set(extension.typeName, file);
    for (const service of file.services) {
      bySymbol.set(service.typeName, file);
      for (const method of service.methods) bySymbol.set(`${service.typeName}.${method.name}`, file);
    }
  };
  for (const service of services) add(service.file);
  return { services: services.map((s) => s.typeName), byFilename, bySymbol };
}

/** A file and its transitive dependencies, each as a serialized FileDescriptorProto, the file first. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dependency of f.dependencies) visit(dependency);
  };
  visit(file);
  return out;
}

function answer(index: DescriptorIndex, request: ServerReflectionRequest): ServerReflectionResponse {
  const notFound = (what: string) =>
    create(ServerReflectionResponseSchema, {
      originalRequest: request,
      messageResponse: { case: "errorResponse", value: { errorCode: Code.NOT_FOUND, errorMessage: `${what} not found` } },
    });
  const files = (file: DescFile | undefined, what: string) =>
    file === undefined
      ? notFound(what)
      : create(ServerReflectionResponseSchema, {
          originalRequest: request,
          messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } },
        });
  const { messageRequest } = request;
  switch (messageRequest.case) {
    case "listServices":
      return create(ServerReflectionResponseSchema, {
        originalRequest: request,
        messageResponse: { case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } },
      });
    case "fileByFilename":
      return files(index.byFilename.get(messageRequest.value), `file ${messageRequest.value}`);
    case "fileContainingSymbol":
      return files(index.bySymbol.get(messageRequest.value), `symbol ${messageRequest.value}`);
    case "allExtensionNumbersOfType":
      return create(ServerReflectionResponseSchema, {
        originalRequest: request,
        messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: messageRequest.value, extensionNumber: [] } },
      });
    default:
      return create(ServerReflectionResponseSchema, {
        originalRequest: request,
        messageResponse: { case: "errorResponse", value: { errorCode: Code.UNIMPLEMENTED, errorMessage: "not supported" } },
      });
  }
}

/**
 * gRPC server reflection (grpc.reflection.v1, and v1alpha for older
 * clients: the same messages on the wire) from the protobuf-es descriptors
 * the server is built from, so a generic client (grpcurl, Postman, a test)
 * can list the services and call them without the .proto files.
 * Hand-written because @grpc/reflection only reads proto-loader package
 * definitions, which Orderly does not use.
 */
export function reflectionServices(services: readonly DescService[]): StreamingRegistration[] {
  const index = indexFiles([...services, ServerReflection]);
  const implementation: grpc.UntypedServiceImplementation = {
    ServerReflectionInfo(call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) {
      call.on("data", (request: ServerReflectionRequest) => call.write(answer(index, request)));
      call.on("end", () => call.end());
      call.on("error", () => call.end());
    },
  };
  const v1alpha = "grpc.reflection.v1alpha.ServerReflection";
  return [
    { name: ServerReflection.typeName, definition: grpcServiceDefinition(ServerReflection), implementation },
    { name: v1alpha, definition: grpcServiceDefinition(ServerReflection, v1alpha), implementation },
  ];
}
