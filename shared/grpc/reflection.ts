import * as grpc from "@grpc/grpc-js";
import { clone, create, createFileRegistry, toBinary, type DescEnum, type DescExtension, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";
import { Code } from "../errors/index.js";
import { grpcServiceDefinition, undecodable, type StreamingRegistration } from "./server.js";

/** The files a service's descriptors live in, every symbol they declare, and the extensions of each message type. */
interface DescriptorIndex {
  services: string[];
  byFilename: Map<string, DescFile>;
  /** The names a file declares (package-qualified): its messages, fields, oneofs, enums, enum values, extensions, services and methods (not the map entries and proto3-optional oneofs protoc makes, which protobuf-es does not list). */
  bySymbol: Map<string, DescFile>;
  /** The messages' names, which alone may be extended. */
  messages: Set<string>;
  /** Per extended message type: the extension numbers declared for it, each with its file. */
  extensionsOf: Map<string, Map<number, DescFile>>;
}

function indexFiles(services: readonly DescService[], serviceNames: readonly string[]): DescriptorIndex {
  const byFilename = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensionsOf = new Map<string, Map<number, DescFile>>();
  const addExtension = (extension: DescExtension, file: DescFile) => {
    bySymbol.set(extension.typeName, file);
    const numbers = extensionsOf.get(extension.extendee.typeName) ?? new Map<number, DescFile>();
    extensionsOf.set(extension.extendee.typeName, numbers.set(extension.number, file));
  };
  /** An enum, and its values in the scope that holds the enum (protobuf's scoping, as `protoc` and Go name them: `pkg.VALUE`). */
  const addEnum = (e: DescEnum, scope: string, file: DescFile) => {
    bySymbol.set(e.typeName, file);
    for (const value of e.values) bySymbol.set(scope === "" ? value.name : `${scope}.${value.name}`, file);
  };
  const addMessage = (message: DescMessage, file: DescFile) => {
    bySymbol.set(message.typeName, file);
    messages.add(message.typeName);
    for (const field of message.fields) bySymbol.set(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) bySymbol.set(`${message.typeName}.${oneof.name}`, file);
    for (const nested of message.nestedMessages) addMessage(nested, file);
    for (const nested of message.nestedEnums) addEnum(nested, message.typeName, file);
    for (const extension of message.nestedExtensions) addExtension(extension, file);
  };
  const add = (file: DescFile) => {
    if (byFilename.has(file.proto.name)) return;
    byFilename.set(file.proto.name, file);
    for (const dependency of file.dependencies) add(dependency);
    for (const message of file.messages) addMessage(message, file);
    for (const e of file.enums) addEnum(e, file.proto.package, file);
    for (const extension of file.extensions) addExtension(extension, file);
    for (const service of file.services) {
      bySymbol.set(service.typeName, file);
      for (const method of service.methods) bySymbol.set(`${service.typeName}.${method.name}`, file);
    }
  };
  for (const service of services) add(service.file);
  return { services: [...serviceNames], byFilename, bySymbol, messages, extensionsOf };
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
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = messageRequest.value;
      return files(index.extensionsOf.get(containingType)?.get(extensionNumber), `extension ${extensionNumber} of ${containingType}`);
    }
    case "allExtensionNumbersOfType": {
      const type = messageRequest.value;
      if (!index.messages.has(type)) return notFound(`type ${type}`);
      const numbers = [...(index.extensionsOf.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      return create(ServerReflectionResponseSchema, {
        originalRequest: request,
        messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber: numbers } },
      });
    }
    default:
      return create(ServerReflectionResponseSchema, {
        originalRequest: request,
        // An empty question, or one of a newer version of the protocol (its field unknown here): as grpc-go answers it.
        messageResponse: {
          case: "errorResponse",
          value: {
            errorCode: Code.INVALID_ARGUMENT,
            errorMessage: "no question this server answers: ask list_services, file_by_filename, file_containing_symbol, file_containing_extension or all_extension_numbers_of_type",
          },
        },
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
  const v1alpha = v1alphaReflection();
  const names = [...services.map((s) => s.typeName), ServerReflection.typeName, v1alpha.typeName];
  const index = indexFiles([...services, ServerReflection, v1alpha], names);
  const implementation: grpc.UntypedServiceImplementation = {
    ServerReflectionInfo(call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) {
      call.on("data", (request: ServerReflectionRequest) => {
        // An undecodable request has no original to echo: its error response says what was wrong, and the stream goes on.
        const refusal = undecodable(request);
        const taken = call.write(
          refusal
            ? create(ServerReflectionResponseSchema, { messageResponse: { case: "errorResponse", value: { errorCode: Code.INVALID_ARGUMENT, errorMessage: refusal.message } } })
            : answer(index, request),
        );
        // Answers the client is not taking: no more questions are read until it does (HTTP/2's flow control then holds
        // the rest on its side), so a client that asks and never reads cannot fill the server's memory with answers.
        if (!taken) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
      call.on("end", () => call.end());
      call.on("error", () => call.end());
    },
  };
  return [
    { name: ServerReflection.typeName, definition: grpcServiceDefinition(ServerReflection), implementation },
    { name: v1alpha.typeName, definition: grpcServiceDefinition(ServerReflection, v1alpha.typeName), implementation },
  ];
}

const V1 = "grpc.reflection.v1";
const V1ALPHA = "grpc.reflection.v1alpha";

/**
 * The v1alpha reflection service, as its own descriptor: v1's file under
 * v1alpha's name and package (the messages are the same on the wire), so a
 * client that lists it can also describe it.
 */
function v1alphaReflection(): DescService {
  const proto = clone(FileDescriptorProtoSchema, ServerReflection.file.proto);
  const rename = (typeName: string) => typeName.replace(`.${V1}.`, `.${V1ALPHA}.`);
  proto.name = proto.name.replace("/v1/", "/v1alpha/");
  proto.package = V1ALPHA;
  // Only a message or enum field names a type: setting a scalar's (proto2, so an empty string counts as set) makes a file
  // that strict descriptor pools (Python's, C++'s: grpc_cli, grpcurl) refuse.
  for (const message of proto.messageType) for (const field of message.field) if (field.typeName !== "") field.typeName = rename(field.typeName);
  for (const service of proto.service) {
    for (const method of service.method) {
      method.inputType = rename(method.inputType);
      method.outputType = rename(method.outputType);
    }
  }
  const service = createFileRegistry(proto, () => undefined).getService(`${V1ALPHA}.ServerReflection`);
  if (service === undefined) throw new Error("the v1alpha reflection descriptor has no ServerReflection service");
  return service;
}
