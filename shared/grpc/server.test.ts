import * as grpc from "@grpc/grpc-js";
import { once } from "node:events";
import { connect as connectHttp2 } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { expect, test } from "vitest";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema, type ServerReflectionRequest, type ServerReflectionResponse } from "../../proto/gen/grpc/reflection/v1/reflection_pb.js";
import { GetOrderRequestSchema, QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { waitFor } from "../../test/helpers/processes.js";
import { OrderlyError, fromStatus, type Code } from "../errors/index.js";
import { createLogger, silentLogger } from "../logging/index.js";
import { contextFromTraceparent } from "../observability/trace-context.js";
import { openDatabase } from "../sqlite/index.js";
import { callUnary, connect } from "./client.js";
import { bindAddress, registration, startGrpcServer } from "./server.js";
import type { ServiceHandlers } from "./types.js";

/** A server whose QueryService.GetOrder is `getOrder`, and a plain grpc-js client of it (no Orderly client in between): both end with the scope. */
async function rawGetOrderServer(getOrder: ServiceHandlers<typeof QueryService>["getOrder"]) {
  const handlers = { getOrder } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, handlers)] });
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  return {
    client,
    [Symbol.asyncDispose]: async () => {
      client.close();
      await server.close(0);
    },
  };
}

test("a call's signal is aborted when its caller cancels it or its deadline passes, and never once the call has been answered", async () => {
  const signals = new Map<string, AbortSignal>();
  const handlers = {
    // "wait…" is answered only when its call has ended; any other id at once.
    getOrder: async ({ id }, context) => {
      signals.set(id, context.signal);
      if (id.startsWith("wait")) await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      return { order: { id } };
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, handlers)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const call = (id: string, signal?: AbortSignal) => callUnary(connection, QueryService.method.getOrder, { id }, { deadline: Date.now() + 10_000, signal });

  const answered = await call("answered");
  expect(answered.order?.id).toBe("answered");
  // grpc-js reports a call as cancelled once it has ended, answered or not; another round trip gives it the time to.
  await call("next");
  expect(signals.get("answered")?.aborted).toBe(false);

  const caller = new AbortController();
  const waiting = call("wait", caller.signal).catch((error: unknown) => error);
  await waitFor(() => signals.has("wait"), "the waiting call to reach its handler");
  caller.abort();
  expect(await waiting).toMatchObject({ reason: "CANCELLED" });
  await waitFor(() => signals.get("wait")!.aborted, "the handler's signal to be aborted once its caller has gone");
  expect(signals.get("wait")!.reason).toBeInstanceOf(OrderlyError);
  expect(signals.get("wait")!.reason).toMatchObject({ reason: "CANCELLED" });

  const late = await callUnary(connection, QueryService.method.getOrder, { id: "wait-deadline" }, { deadline: Date.now() + 300 }).catch((error: unknown) => error);
  expect(late).toMatchObject({ reason: "DEADLINE_EXCEEDED" });
  await waitFor(() => signals.get("wait-deadline")?.aborted === true, "the handler's signal to be aborted once its deadline has passed");
});

test("an error thrown while grpc-js starts a call keeps its stack (the client turns stack capture off only for grpc-js's own caller stack)", async () => {
  const stackTraceLimit = Error.stackTraceLimit;
  const closed = connect("127.0.0.1:1");
  closed.close();
  const error = await callUnary(closed, QueryService.method.getOrder, { id: "any" }, { deadline: Date.now() + 1000 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(/shut down/);
  expect((error as Error).stack).toMatch(/\n\s+at /);
  expect(Error.stackTraceLimit).toBe(stackTraceLimit);
});

test("a handler's log lines name its call's method, request id and trace (the caller's traceparent), and a line's own fields win", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const handlers = {
    getOrder: async ({ id }, context) => {
      context.logger.info("in the handler");
      context.logger.child({ orderId: id }).info({ requestId: "its own" }, "in a child");
      return { order: { id } };
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger, services: [registration(QueryService, handlers)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const traceContext = contextFromTraceparent(`00-${traceId}-b7ad6b7169203331-01`);
  await callUnary(connection, QueryService.method.getOrder, { id: "o1" }, { deadline: Date.now() + 10_000, requestId: "req-1", traceContext });
  const method = "orderly.query.v1.QueryService/GetOrder";
  expect(lines.map(({ msg, service, method, requestId, orderId, traceId }) => ({ msg, service, method, requestId, orderId, traceId }))).toEqual([
    { msg: "in the handler", service: "test", method, requestId: "req-1", orderId: undefined, traceId },
    { msg: "in a child", service: "test", method, requestId: "its own", orderId: "o1", traceId },
  ]);
});

test("close answers a call still running after the grace SERVICE_UNAVAILABLE, and resolves only once every handler has ended, a gone caller's too", async () => {
  const events: string[] = [];
  /** How long each call's handler goes on after its signal aborts (as a handler recording an outcome would). */
  const after: Record<string, number> = { wait: 200, gone: 800 };
  const handlers = {
    getOrder: async ({ id }, context) => {
      events.push(`${id} started`);
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      await new Promise((resolve) => setTimeout(resolve, after[id]));
      events.push(`${id} ended`);
      throw context.signal.reason;
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, handlers)] });
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const call = (id: string, signal?: AbortSignal) => callUnary(connection, QueryService.method.getOrder, { id }, { deadline: Date.now() + 10_000, signal }).catch((error: unknown) => error);
  // "wait" runs past the grace; "gone"'s caller hangs up first, and its handler goes on longer than the aborted one's.
  const waiting = call("wait");
  const caller = new AbortController();
  const gone = call("gone", caller.signal);
  await waitFor(() => events.includes("wait started") && events.includes("gone started"), "both calls to reach their handlers");
  caller.abort();
  await gone;
  await server.close(300);
  events.push("closed");
  expect(events.slice(2)).toEqual(["wait ended", "gone ended", "closed"]);
  expect(await waiting).toMatchObject({ reason: "SERVICE_UNAVAILABLE" });
});

test("a request that is not its message type's binary form is refused INVALID_ARGUMENT (MALFORMED_REQUEST, with its reason in the status details), not INTERNAL, and its handler never runs", async () => {
  let handled = 0;
  await using served = await rawGetOrderServer(async ({ id }) => {
    handled++;
    return { order: { id } };
  });
  const { client } = served;
  const raw = (bytes: Buffer) =>
    new Promise<grpc.ServiceError | undefined>((resolve) =>
      client.makeUnaryRequest(`/${QueryService.typeName}/GetOrder`, (b: Buffer) => b, (b: Buffer) => b, bytes, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error) => resolve(error ?? undefined)),
    );
  // A truncated varint, then a field of wire type 7 (none such), then a length past the end.
  for (const bytes of [Buffer.from([0x08, 0xff]), Buffer.from([0x0f]), Buffer.from([0x0a, 0x7f, 0x61])]) {
    const error = await raw(bytes);
    const details = error?.metadata.get("grpc-status-details-bin")[0];
    const status = fromStatus(error!.code as number as Code, error!.details, details instanceof Buffer ? details : undefined);
    expect({ code: error?.code, reason: status.reason }).toEqual({ code: grpc.status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });
  }
  expect(handled).toBe(0);
  expect(await raw(Buffer.from(toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { id: "fine" }))))).toBeUndefined();
  expect(handled).toBe(1);
});

test("a call's metadata key sent twice reaches the handler as its values joined (so doubled credentials verify as nothing), and a request id Orderly would not keep is replaced", async () => {
  const seen: { requestId?: string; twice?: string; once?: string } = {};
  await using served = await rawGetOrderServer(async ({ id }, context) => {
    Object.assign(seen, { requestId: context.requestId, twice: context.metadata["x-twice"], once: context.metadata["x-once"] });
    return { order: { id } };
  });
  const { client } = served;
  const metadata = new grpc.Metadata();
  metadata.add("x-twice", "Bearer a");
  metadata.add("x-twice", "Bearer b");
  metadata.set("x-once", "one");
  metadata.set("x-request-id", "r".repeat(200));
  await new Promise<void>((resolve, reject) =>
    client.makeUnaryRequest(
      "/orderly.query.v1.QueryService/GetOrder",
      (request: Uint8Array) => Buffer.from(request),
      (response: Buffer) => response,
      toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { id: "o1" })),
      metadata,
      (error) => (error ? reject(error) : resolve()),
    ),
  );
  expect(seen.twice).toBe("Bearer a, Bearer b");
  expect(seen.once).toBe("one");
  expect(seen.requestId).toMatch(/^[0-9a-f-]{36}$/);
});

test("health checks and reflection refuse an undecodable request INVALID_ARGUMENT (MALFORMED_REQUEST) too; reflection answers it in its stream and goes on", async () => {
  await using served = await rawGetOrderServer(async ({ id }) => ({ order: { id } }));
  const { client } = served;
  const truncated = Buffer.from([0x0a, 0x7f, 0x61]);
  const refusal = (error: grpc.ServiceError | undefined) => {
    const details = error?.metadata.get("grpc-status-details-bin")[0];
    return { code: error?.code, reason: fromStatus(error!.code as number as Code, error!.details, details instanceof Buffer ? details : undefined).reason };
  };
  const check = await new Promise<grpc.ServiceError | undefined>((resolve) =>
    client.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, truncated, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error) => resolve(error ?? undefined)),
  );
  expect(refusal(check)).toEqual({ code: grpc.status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });
  const watch = client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", (b: Buffer) => b, (b: Buffer) => b, truncated, new grpc.Metadata(), { deadline: Date.now() + 5000 });
  watch.on("data", () => {});
  const [watchError] = (await once(watch, "error")) as [grpc.ServiceError];
  expect(refusal(watchError)).toEqual({ code: grpc.status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });

  const reflection = client.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", (b: Buffer) => b, (b: Buffer) => Buffer.from(b), new grpc.Metadata(), { deadline: Date.now() + 5000 });
  const answers: ServerReflectionResponse[] = [];
  reflection.on("data", (bytes: Buffer) => answers.push(fromBinary(ServerReflectionResponseSchema, bytes)));
  reflection.write(truncated);
  reflection.write(Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }))));
  reflection.end();
  await once(reflection, "end");
  expect(answers.map((a) => a.messageResponse.case)).toEqual(["errorResponse", "listServicesResponse"]);
  expect(answers[0]!.messageResponse.value).toMatchObject({ errorCode: grpc.status.INVALID_ARGUMENT });
});

test("reflection finds a file by any name it declares (a field, a oneof, an enum value in its enum's scope, as protoc and Go name them), and answers an empty question INVALID_ARGUMENT", async () => {
  await using served = await rawGetOrderServer(async ({ id }) => ({ order: { id } }));
  const reflection = served.client.makeBidiStreamRequest("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", (b: Buffer) => b, (b: Buffer) => Buffer.from(b), new grpc.Metadata(), { deadline: Date.now() + 5000 });
  const answers: ServerReflectionResponse[] = [];
  reflection.on("data", (bytes: Buffer) => answers.push(fromBinary(ServerReflectionResponseSchema, bytes)));
  const symbols = [
    "orderly.query.v1.GetOrderRequest.min_version",
    "orderly.order.v1.ORDER_STATUS_CONFIRMED",
    "buf.validate.FieldRules.type",
    "google.protobuf.FieldDescriptorProto.TYPE_STRING",
    "orderly.order.v1.OrderStatus.ORDER_STATUS_CONFIRMED",
  ];
  const ask = (messageRequest: ServerReflectionRequest["messageRequest"]) =>
    reflection.write(Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest }))));
  for (const symbol of symbols) ask({ case: "fileContainingSymbol", value: symbol });
  // A field is no type to extend.
  ask({ case: "allExtensionNumbersOfType", value: "orderly.query.v1.GetOrderRequest.min_version" });
  ask({ case: undefined });
  reflection.end();
  await once(reflection, "end");
  expect(
    answers.map(({ messageResponse: answer }) =>
      answer.case === "fileDescriptorResponse" ? fromBinary(FileDescriptorProtoSchema, answer.value.fileDescriptorProto[0]!).name : answer.case === "errorResponse" ? answer.value.errorCode : answer.case,
    ),
  ).toEqual(["orderly/query/v1/query.proto", "orderly/order/v1/order.proto", "buf/validate/validate.proto", "google/protobuf/descriptor.proto", 5, 5, 3]);
});

test("reflection reads no more questions while its answers are not taken: a client that asks and never reads does not fill the server's memory with answers; once it reads, each question is answered", async () => {
  const before = process.memoryUsage().arrayBuffers;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, {} as ServiceHandlers<typeof QueryService>)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const session = connectHttp2(`http://127.0.0.1:${server.port}`);
  using _session = { [Symbol.dispose]: () => session.close() };
  const stream = session.request({ ":method": "POST", ":path": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "content-type": "application/grpc", te: "trailers" });
  stream.pause();
  // 3,000 questions of ~40 bytes, each answered with the service's file and its imports (~25 kB): ~75 MB of answers
  // queued in the server, in this process, when it reads them all without its answers being taken.
  const question = toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: QueryService.typeName } }));
  const frame = Buffer.alloc(5 + question.length);
  frame.writeUInt32BE(question.length, 1);
  frame.set(question, 5);
  const questions = 3000;
  for (let i = 0; i < questions; i++) stream.write(frame);
  stream.end();
  // Not read: once the client's window for answers is full and the process's buffers have not moved by a megabyte
  // for half a second, the server has done what it will.
  const buffers = () => process.memoryUsage().arrayBuffers - before;
  let seen = Number.NEGATIVE_INFINITY;
  let since = performance.now();
  await waitFor(
    () => {
      if (Math.abs(buffers() - seen) > 1e6) [seen, since] = [buffers(), performance.now()];
      return stream.state.localWindowSize === 0 && performance.now() - since > 500;
    },
    "the server to stop answering",
    10_000,
    20,
  );
  expect(buffers()).toBeLessThan(16e6);

  // Read: every question answered, in a length-prefixed message each.
  let answers = 0;
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      answers++;
      pending = pending.subarray(5 + pending.readUInt32BE(1));
    }
  });
  stream.resume();
  await once(stream, "end");
  expect(answers).toBe(questions);
});

test("a call's request id comes back in its response metadata, or in its trailers when it fails: the caller's own, or the one made for it", async () => {
  await using served = await rawGetOrderServer(async ({ id }) => {
    if (id === "missing") throw new OrderlyError("ORDER_NOT_FOUND", "no such order");
    return { order: { id } };
  });
  const { client } = served;
  const call = (id: string, requestId?: string) =>
    new Promise<{ sent?: string; trailer?: string; code?: number }>((resolve) => {
      const metadata = new grpc.Metadata();
      if (requestId !== undefined) metadata.set("x-request-id", requestId);
      let sent: string | undefined;
      const request = Buffer.from(toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { id })));
      const unary = client.makeUnaryRequest(`/${QueryService.typeName}/GetOrder`, (b: Buffer) => b, (b: Buffer) => b, request, metadata, { deadline: Date.now() + 5000 }, (error) =>
        resolve({ sent, trailer: error?.metadata.get("x-request-id")[0] as string | undefined, code: error?.code }),
      );
      unary.on("metadata", (headers: grpc.Metadata) => (sent = headers.get("x-request-id")[0] as string | undefined));
    });
  expect(await call("ord-1", "client-7")).toEqual({ sent: "client-7", trailer: undefined, code: undefined });
  const made = await call("ord-2");
  expect(made.sent).toMatch(/^[0-9a-f-]{36}$/);
  expect(await call("missing", "client-8")).toMatchObject({ trailer: "client-8", code: grpc.status.NOT_FOUND });
});

test("a handler whose database is full answers UNAVAILABLE (STORAGE_UNAVAILABLE) with a retry delay and nothing of SQLite, and the log says what it was, at error", async () => {
  // A real SQLite database that cannot grow: what a full disk answers (SQLITE_FULL).
  const db = openDatabase({ file: ":memory:", migrations: ["CREATE TABLE t (x BLOB)"] });
  using _db = { [Symbol.dispose]: () => db.close() };
  db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("query", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const handlers = {
    // Synchronous, as the services' store-backed handlers are: it throws before any promise exists.
    getOrder: () => {
      db.prepare("INSERT INTO t VALUES (zeroblob(100000))").run();
      return {};
    },
  } as unknown as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger, services: [registration(QueryService, handlers)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const error = (await callUnary(connection, QueryService.method.getOrder, { id: "ord-1" }, { deadline: Date.now() + 5000, requestId: "req-full-1" }).catch((e: unknown) => e)) as OrderlyError;
  expect({ code: error.code, reason: error.reason, retryAfter: error.metadata.retryAfterSeconds }).toEqual({ code: grpc.status.UNAVAILABLE, reason: "STORAGE_UNAVAILABLE", retryAfter: "5" });
  expect(error.message).not.toMatch(/SQLITE|full/);
  const logged = lines.find((line) => line.requestId === "req-full-1" && line.msg === "call failed");
  expect({ level: logged?.level, reason: logged?.reason, code: (logged?.err as { code?: string } | undefined)?.code }).toEqual({ level: 50, reason: "STORAGE_UNAVAILABLE", code: "SQLITE_FULL" });
});

test("a handler's unexpected error reaches the caller as INTERNAL with a generic message, and only the log has what it said, under the call's request id", async () => {
  const lines: Record<string, unknown>[] = [];
  const handlers = {
    getOrder: async () => {
      throw new Error("SQLITE_BUSY at /srv/orderly/secret/query.db");
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const logger = createLogger("query", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger, services: [registration(QueryService, handlers)] });
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  try {
    const metadata = new grpc.Metadata();
    metadata.set("x-request-id", "req-internal-1");
    const request = Buffer.from(toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { id: "ord-1" })));
    const error = await new Promise<grpc.ServiceError | undefined>((resolve) =>
      client.makeUnaryRequest(`/${QueryService.typeName}/GetOrder`, (b: Buffer) => b, (b: Buffer) => b, request, metadata, { deadline: Date.now() + 5000 }, (e) => resolve(e ?? undefined)),
    );
    const details = error?.metadata.get("grpc-status-details-bin")[0];
    const status = fromStatus(error!.code as number as Code, error!.details, details instanceof Buffer ? details : undefined);
    expect({ code: error?.code, details: error?.details, reason: status.reason }).toEqual({ code: grpc.status.INTERNAL, details: "internal error", reason: "INTERNAL" });
    // Nothing of the cause anywhere in what the caller got.
    const received = [error?.details, status.message, ...Object.values(error!.metadata.getMap()).map((value) => (Buffer.isBuffer(value) ? value.toString("latin1") : value))].join("\n");
    expect(received).not.toMatch(/SQLITE|secret|\/srv\//);
    expect(JSON.stringify(lines.filter((l) => l.requestId === "req-internal-1"))).toContain("SQLITE_BUSY at /srv/orderly/secret/query.db");
  } finally {
    client.close();
    await server.close(0);
  }
});

test("a reason an RPC's proto does not declare (orderly.errors.v1.errors) reaches the caller as it is, and the log names it at error, once per RPC and reason", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("query", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  // QueryService.GetOrder declares ORDER_NOT_FOUND and TOO_MANY_WAITS; ORDER_NOT_CANCELLABLE is CancelOrder's; DEADLINE_EXCEEDED any call's.
  const handlers = {
    getOrder: ({ id }: { id: string }) => {
      throw new OrderlyError(id.split("-")[0] as "ORDER_NOT_FOUND", `refused ${id}`);
    },
  } as unknown as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger, services: [registration(QueryService, handlers)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const reasons: string[] = [];
  for (const id of ["ORDER_NOT_FOUND-1", "DEADLINE_EXCEEDED-1", "ORDER_NOT_CANCELLABLE-1", "ORDER_NOT_CANCELLABLE-2"]) {
    const error = (await callUnary(connection, QueryService.method.getOrder, { id }, { deadline: Date.now() + 5000, requestId: `req-${id}` }).catch((e: unknown) => e)) as OrderlyError;
    reasons.push(error.reason);
  }
  expect(reasons).toEqual(["ORDER_NOT_FOUND", "DEADLINE_EXCEEDED", "ORDER_NOT_CANCELLABLE", "ORDER_NOT_CANCELLABLE"]);
  const flagged = lines.filter((line) => String(line.msg).includes("does not declare"));
  expect(flagged.map((line) => ({ level: line.level, reason: line.reason, requestId: line.requestId, method: line.method }))).toEqual([
    { level: 50, reason: "ORDER_NOT_CANCELLABLE", requestId: "req-ORDER_NOT_CANCELLABLE-1", method: `${QueryService.typeName}/GetOrder` },
  ]);
});

test("a server binds an IPv6 bind host in brackets, as grpc-js takes it, and any other as it is", () => {
  expect([bindAddress("::", 50051), bindAddress("::1", 0), bindAddress("127.0.0.1", 50051), bindAddress("0.0.0.0", 1), bindAddress("localhost", 2)]).toEqual([
    "[::]:50051",
    "[::1]:0",
    "127.0.0.1:50051",
    "0.0.0.0:1",
    "localhost:2",
  ]);
});
