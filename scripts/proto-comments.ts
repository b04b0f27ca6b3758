/**
 * Writes proto/gen/comments.json: the comment above each element of Orderly's
 * own protos (services and their methods, messages and their fields, enums and
 * their values), by full name, for the descriptions of the OpenAPI document.
 * protoc-gen-es writes comments into the generated code's JSDoc, not into the
 * descriptors it embeds, so they are read here from buf's build of the protos,
 * which keeps them. Run by `npm run generate` (CI checks the file is current).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type DescriptorProto, type EnumDescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const PROTO_DIR = fileURLToPath(new URL("../proto/", import.meta.url));
const OUT = fileURLToPath(new URL("../proto/gen/comments.json", import.meta.url));

/** Field numbers of descriptor.proto that lead from a file to an element (SourceCodeInfo paths). */
const FILE_MESSAGE = 4, FILE_ENUM = 5, FILE_SERVICE = 6;
const MESSAGE_FIELD = 2, MESSAGE_NESTED = 3, MESSAGE_ENUM = 4;
const ENUM_VALUE = 2, SERVICE_METHOD = 2;

function messageNameAt(message: DescriptorProto, name: string, path: readonly number[]): string | undefined {
  const [kind, index, ...rest] = path;
  if (kind === undefined) return name;
  if (index === undefined) return undefined;
  if (kind === MESSAGE_FIELD && rest.length === 0) return fieldName(name, message.field[index]?.name);
  if (kind === MESSAGE_NESTED) {
    const nested = message.nestedType[index];
    return nested && messageNameAt(nested, `${name}.${nested.name}`, rest);
  }
  if (kind === MESSAGE_ENUM) {
    const nested = message.enumType[index];
    return nested && enumNameAt(nested, `${name}.${nested.name}`, rest);
  }
  return undefined;
}

function enumNameAt(desc: EnumDescriptorProto, name: string, path: readonly number[]): string | undefined {
  const [kind, index, ...rest] = path;
  if (kind === undefined) return name;
  return kind === ENUM_VALUE && index !== undefined && rest.length === 0 ? fieldName(name, desc.value[index]?.name) : undefined;
}

function fieldName(parent: string, name: string | undefined): string | undefined {
  return name === undefined ? undefined : `${parent}.${name}`;
}

/** The full name of the element a SourceCodeInfo path leads to, when it is one that is described. */
function nameAt(file: FileDescriptorProto, path: readonly number[]): string | undefined {
  const [kind, index, ...rest] = path;
  if (index === undefined) return undefined;
  if (kind === FILE_MESSAGE) {
    const message = file.messageType[index];
    return message && messageNameAt(message, `${file.package}.${message.name}`, rest);
  }
  if (kind === FILE_ENUM) {
    const desc = file.enumType[index];
    return desc && enumNameAt(desc, `${file.package}.${desc.name}`, rest);
  }
  if (kind === FILE_SERVICE) {
    const service = file.service[index];
    if (service === undefined) return undefined;
    const [methodKind, methodIndex, ...beyond] = rest;
    if (methodKind === undefined) return `${file.package}.${service.name}`;
    return methodKind === SERVICE_METHOD && methodIndex !== undefined && beyond.length === 0
      ? fieldName(`${file.package}.${service.name}`, service.method[methodIndex]?.name)
      : undefined;
  }
  return undefined;
}

/** A comment's text: each line without the one space after `//`, the whole without blank lines around it. */
function text(comment: string): string {
  return comment
    .split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
}

function protoComments(set: Uint8Array): Record<string, string> {
  const comments: Record<string, string> = {};
  for (const file of fromBinary(FileDescriptorSetSchema, set).file) {
    if (!file.package.startsWith("orderly.")) continue;
    for (const location of file.sourceCodeInfo?.location ?? []) {
      if (location.leadingComments === undefined || location.leadingComments.trim() === "") continue;
      const name = nameAt(file, location.path);
      if (name !== undefined) comments[name] = text(location.leadingComments);
    }
  }
  return Object.fromEntries(Object.entries(comments).sort(([a], [b]) => (a < b ? -1 : 1)));
}

const buf = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
const set = execFileSync(buf, ["build", "--as-file-descriptor-set", "--output", "-"], { cwd: PROTO_DIR, maxBuffer: 64 << 20 });
writeFileSync(OUT, `${JSON.stringify(protoComments(set), null, 2)}\n`);
