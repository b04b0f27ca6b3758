import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toBinary, toJson, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { expect, test } from "vitest";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionResponse,
} from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";
import { startService, waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** A generic grpc-js client: nothing of Orderly's, no generated code. */
function genericClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure());
}

/** Streams grpc.health.v1.Health/Watch of a service; `statuses` fills with each status name received, `end` with how the stream ended. */
function watchHealth(client: grpc.Client, service: string) {
  const statuses: string[] = [];
  const end: { code?: grpc.status } = {};
  const names = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
  // HealthCheckRequest{service} and HealthCheckResponse{status} by hand: field 1, a string and an enum.
  const request = Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(service)]), Buffer.from(service)]);
  const call = client.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    (b: Buffer) => b,
    (b: Buffer) => (b.length >= 2 ? b[1]! : 0),
    request,
  );
  call.on("data", (status: number) => statuses.push(names[status] ?? String(status)));
  call.on("error", () => {});
  call.on("status", (status: grpc.StatusObject) => (end.code = status.code));
  return { statuses, end, cancel: () => call.cancel() };
}

/** Asks the reflection service one question over a bidi stream, in the reflection protocol's own messages. */
/** The gateway's own checks, as its admin server's /status.json reports them. */
async function gatewayChecks(adminUrl: string): Promise<Record<string, boolean>> {
  const status = (await (await fetch(`${adminUrl}/status.json`)).json()) as { processes: { name: string; status?: { checks: Record<string, boolean> } }[] };
  return status.processes.find((p) => p.name === "gateway")!.status!.checks;
}

function reflect(client: grpc.Client, request: Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1]): Promise<ServerReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      (m: Uint8Array) => Buffer.from(m),
      (b: Buffer) => fromBinary(ServerReflectionResponseSchema, bytes(b)),
    );
    call.on("data", (response: ServerReflectionResponse) => {
      resolve(response);
      call.end();
    });
    call.on("error", reject);
    call.write(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, request)));
  });
}

test("a query service whose NATS user may not use its consumers reports not ready, and logs why at error level, rather than serving a read model that never moves", async () => {
  await using system = await startSystem();
  using dir = tempDir("orderly-query-copy-");
  // A copy under a consumer name of its own, logging in as the query user, whose permissions name the first's consumers only.
  await using copy = await startService("query-copy", "services/query/main.ts", {
    ...system.env.query,
    QUERY_DB_FILE: join(dir.path, "query.db"),
    QUERY_CONSUMER_NAME: "copy-z",
    QUERY_GRPC_PORT: "0",
    QUERY_ADMIN_PORT: "0",
  });
  const refusal = await waitFor(
    () => copy.logs.map((line) => JSON.parse(line) as { level: number; msg: string }).find((line) => line.msg.startsWith("NATS refused the stream setup")),
    "the copy's log line saying NATS refused its stream setup",
  );
  expect(refusal).toMatchObject({ level: 50, msg: "NATS refused the stream setup (see the NATS user's permissions and the consumer names); retrying" });
  const health = await fetch(`http://127.0.0.1:${copy.adminPort}/healthz`);
  expect({ status: health.status, body: await health.json() }).toMatchObject({
    status: 503,
    body: { status: "not ready", checks: { serving: true, database: true, nats: true, events: false } },
  });
  const client = genericClient(`127.0.0.1:${copy.port}`);
  using _client = { [Symbol.dispose]: () => client.close() };
  const watch = watchHealth(client, "orderly.query.v1.QueryService");
  using _watch = { [Symbol.dispose]: () => watch.cancel() };
  await waitFor(() => watch.statuses.length > 0, "the copy's gRPC health");
  expect(watch.statuses).toEqual(["NOT_SERVING"]);
});

test("NATS down degrades the processes but leaves them serving (writes go on; the outbox holds their events): grpc.health.v1 stays SERVING, /readyz 200, each /healthz says degraded with nats failing; the gateway reports its cache cut off meanwhile", async () => {
  await using system = await startSystem();
  const client = genericClient(`127.0.0.1:${system.query.port}`);
  using _client = { [Symbol.dispose]: () => client.close() };
  const watch = watchHealth(client, "orderly.query.v1.QueryService");
  using _watch = { [Symbol.dispose]: () => watch.cancel() };
  await waitFor(() => watch.statuses.includes("SERVING"), "SERVING from Watch");

  await system.nats.kill();
  const admin = await waitFor(async () => {
    const answer = await fetch(`http://127.0.0.1:${system.query.adminPort}/healthz`);
    const body = (await answer.json()) as { status: string; checks: Record<string, boolean> };
    return body.checks.nats === false ? { status: answer.status, body } : undefined;
  }, "the query service's nats check failing once NATS is down");
  expect(admin).toMatchObject({ status: 200, body: { status: "degraded", checks: { database: true, nats: false, events: true, descriptors: true } } });
  const ready = await fetch(`${system.baseUrl}/readyz`);
  expect({ status: ready.status, services: ((await ready.json()) as { services: Record<string, string> }).services }).toEqual({
    status: 200,
    services: { order: "SERVING", inventory: "SERVING", query: "SERVING" },
  });
  // A write goes on meanwhile.
  await system.api("POST", "/v1/inventory/HEALTH-1:restock", { body: { quantity: 5 } }).then((r) => expect(r.status).toBe(200));
  // The gateway still answers, but its read cache is cut off from the events that invalidate it: its status says so.
  await waitFor(async () => (await gatewayChecks(system.adminUrl)).cacheLive === false, "the gateway's cacheLive check false while NATS is down");
  // The status page still hears every process (their consumers' lag, which JetStream cannot give now, is left out), so it shows
  // each one's own checks, not "unreachable" (a service's report waited 5 s for JetStream, past the page's 1 s per process).
  const report = (await (await fetch(`${system.adminUrl}/status.json`)).json()) as { processes: { name: string; status?: { checks: Record<string, boolean> }; error?: string }[] };
  expect(report.processes.map((p) => [p.name, p.error ?? p.status?.checks.nats])).toEqual([
    ["gateway", undefined],
    ["order", false],
    ["inventory", false],
    ["query", false],
  ]);

  await system.nats.restart();
  await waitFor(async () => (await gatewayChecks(system.adminUrl)).cacheLive === true, "the gateway's cacheLive check true once NATS is back", 30_000);
  await waitFor(async () => ((await (await fetch(`http://127.0.0.1:${system.query.adminPort}/healthz`)).json()) as { status: string }).status === "ok", "the query service ok again");
  // Serving throughout: Watch never said otherwise.
  expect(watch.statuses).toEqual(["SERVING"]);

  // An unknown service: Check says NOT_FOUND, Watch says SERVICE_UNKNOWN and stays open until the server closes, which ends it.
  const check = await new Promise<grpc.ServiceError | undefined>((resolve) =>
    client.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 2, 0x6e, 0x6f]), (error) => resolve(error ?? undefined)),
  );
  expect(check?.code).toBe(grpc.status.NOT_FOUND);
  const unknown = watchHealth(client, "no.such.Service");
  using _unknown = { [Symbol.dispose]: () => unknown.cancel() };
  await waitFor(() => unknown.statuses.length > 0, "an answer for an unknown service");
  await system.query.stop("SIGTERM");
  expect([watch.statuses.at(-1), watch.end.code]).toEqual(["NOT_SERVING", grpc.status.OK]);
  expect([unknown.statuses, unknown.end.code]).toEqual([["SERVICE_UNKNOWN"], grpc.status.OK]);
});

test("a generic client lists the services by reflection and calls one with only the reflected descriptors", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/REFLECT-1:restock", { body: { quantity: 7, name: "Reflected mug", unitPriceMinor: "1234", currencyCode: "EUR" } });
  const client = genericClient(`127.0.0.1:${system.inventory.port}`);
  using _client = { [Symbol.dispose]: () => client.close() };

  const listed = await reflect(client, { messageRequest: { case: "listServices", value: "*" } });
  expect(listed.messageResponse.case).toBe("listServicesResponse");
  const services = listed.messageResponse.case === "listServicesResponse" ? listed.messageResponse.value.service.map((s) => s.name) : [];
  expect(services.sort()).toEqual([
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "orderly.inventory.v1.InventoryService",
  ]);
  // Every service listed can be described, v1alpha's too (its own file, under its own package).
  for (const service of services) {
    const described = await reflect(client, { messageRequest: { case: "fileContainingSymbol", value: service } });
    if (described.messageResponse.case !== "fileDescriptorResponse") throw new Error(`${service} not described: ${described.messageResponse.case}`);
    const file = fromBinary(FileDescriptorProtoSchema, described.messageResponse.value.fileDescriptorProto[0]!);
    expect(`${file.package}.${file.service.find((s) => service.endsWith(`.${s.name}`))?.name}`).toBe(service);
  }

  // The method options the protos extend (HTTP bindings, access rules, declared error reasons) are found by their numbers, as grpcurl looks them up.
  const extensions = await reflect(client, { messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" } });
  expect(extensions.messageResponse).toEqual(
    expect.objectContaining({ case: "allExtensionNumbersResponse", value: expect.objectContaining({ extensionNumber: [50100, 50101, 72295728] }) }),
  );
  const http = await reflect(client, { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 } } });
  if (http.messageResponse.case !== "fileDescriptorResponse") throw new Error(`no descriptors: ${http.messageResponse.case}`);
  expect(fromBinary(FileDescriptorProtoSchema, http.messageResponse.value.fileDescriptorProto[0]!).name).toBe("google/api/annotations.proto");
  const declared = await reflect(client, { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 50101 } } });
  if (declared.messageResponse.case !== "fileDescriptorResponse") throw new Error(`no descriptors: ${declared.messageResponse.case}`);
  expect(fromBinary(FileDescriptorProtoSchema, declared.messageResponse.value.fileDescriptorProto[0]!).name).toBe("orderly/errors/v1/errors.proto");
  const noSuchExtension = await reflect(client, { messageRequest: { case: "fileContainingExtension", value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 } } });
  const noSuchType = await reflect(client, { messageRequest: { case: "allExtensionNumbersOfType", value: "no.such.Type" } });
  expect([noSuchExtension, noSuchType].map((r) => r.messageResponse.case === "errorResponse" && r.messageResponse.value.errorCode)).toEqual([5, 5]);

  const answer = await reflect(client, { messageRequest: { case: "fileContainingSymbol", value: "orderly.inventory.v1.InventoryService" } });
  if (answer.messageResponse.case !== "fileDescriptorResponse") throw new Error(`no descriptors: ${answer.messageResponse.case}`);
  const files = answer.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  expect(files[0]!.name).toBe("orderly/inventory/v1/inventory.proto");
  // The file first, then its dependencies in no promised order: resolve imports by name.
  const registry = createFileRegistry(files[0]!, (name) => files.find((f) => f.name === name));
  const service = registry.getService("orderly.inventory.v1.InventoryService")!;
  const method = service.methods.find((m) => m.name === "GetItem")!;
  const input: DescMessage = method.input;
  const output: DescMessage = method.output;

  // Reflection is open to anyone; calling an RPC still takes a bearer token.
  const credentials = new grpc.Metadata();
  credentials.set("authorization", `Bearer ${system.tokens.admin}`);
  const response = await new Promise<unknown>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${service.typeName}/${method.name}`,
      (m: Uint8Array) => Buffer.from(m),
      (b: Buffer) => toJson(output, fromBinary(output, bytes(b)), { registry }),
      toBinary(input, create(input, { sku: "REFLECT-1" } as never)),
      credentials,
      { deadline: Date.now() + 5000 },
      (error, value) => (error ? reject(error) : resolve(value)),
    );
  });
  expect(response).toMatchObject({ item: { sku: "REFLECT-1", name: "Reflected mug", unitPriceMinor: "1234", currencyCode: "EUR", available: 7 } });

  const missing = await reflect(client, { messageRequest: { case: "fileContainingSymbol", value: "no.such.Service" } });
  expect(missing.messageResponse.case).toBe("errorResponse");
});
