import { create, createFileRegistry, setExtension, type DescService } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  MethodOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import { createServer } from "node:http";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { expect, test } from "vitest";
import { file_google_api_annotations, http } from "../proto/gen/google/api/annotations_pb.js";
import { HttpRuleSchema } from "../proto/gen/google/api/http_pb.js";
import { InventoryService } from "../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../proto/gen/orderly/query/v1/query_pb.js";
import { connectDownstreams, readinessProbe, routeCaller } from "../gateway/downstreams.js";
import { createGatewayHandler } from "../gateway/http-server.js";
import { openApiDocument } from "../gateway/openapi.js";
import { routesOf } from "../gateway/routes/index.js";
import { startGrpcServer, type ServiceRegistration } from "../shared/grpc/index.js";
import { DECLARED_ONLY, httpStatusFor, reasons, type Code, type Reason } from "../shared/errors/index.js";
import { silentLogger } from "../shared/logging/index.js";
import { defaultDependencyPolicyOptions } from "../shared/resilience/index.js";
import { api } from "./helpers/system.js";

/** A service the gateway has never heard of: Echo is annotated, Whisper is not. */
function echoService(): DescService {
  const annotated = create(MethodOptionsSchema);
  setExtension(annotated, http, create(HttpRuleSchema, { pattern: { case: "get", value: "/v1/echo/{text}" } }));
  const stringField = (name: string, number: number) => ({
    name,
    number,
    jsonName: name,
    type: FieldDescriptorProto_Type.STRING,
    label: FieldDescriptorProto_Label.OPTIONAL,
  });
  const file = create(FileDescriptorProtoSchema, {
    name: "test/echo/v1/echo.proto",
    package: "test.echo.v1",
    syntax: "proto3",
    dependency: ["google/api/annotations.proto"],
    messageType: [
      { name: "EchoRequest", field: [stringField("text", 1), stringField("suffix", 2)] },
      { name: "EchoResponse", field: [stringField("text", 1)] },
    ],
    service: [
      {
        name: "EchoService",
        method: [
          { name: "Echo", inputType: ".test.echo.v1.EchoRequest", outputType: ".test.echo.v1.EchoResponse", options: annotated },
          { name: "Whisper", inputType: ".test.echo.v1.EchoRequest", outputType: ".test.echo.v1.EchoResponse" },
        ],
      },
    ],
  });
  const registry = createFileRegistry(file, (name) => (name === "google/api/annotations.proto" ? file_google_api_annotations : undefined));
  return registry.getService("test.echo.v1.EchoService")!;
}

test("the route table of Orderly's services is exactly their google.api.http annotations", () => {
  const services = [OrderService, InventoryService, QueryService];
  const routes = routesOf(services).map((r) => `${r.httpMethod} ${r.template.source} -> ${r.service.name}.${r.method.name}`);
  expect(routes.sort()).toEqual(
    [
      "POST /v1/orders -> OrderService.CreateOrder",
      "POST /v1/orders/{id}:cancel -> OrderService.CancelOrder",
      "GET /v1/inventory/{sku} -> InventoryService.GetItem",
      "GET /v1/inventory -> InventoryService.ListItems",
      "POST /v1/inventory/{sku}:restock -> InventoryService.Restock",
      "GET /v1/orders/{id} -> QueryService.GetOrder",
      "GET /v1/orders/{id}/timeline -> QueryService.GetOrderTimeline",
      "GET /v1/customers/{customer_id}/orders -> QueryService.ListCustomerOrders",
      "GET /v1/stock/{sku} -> QueryService.GetStockLevel",
      "GET /v1/stock -> QueryService.ListStockLevels",
      "GET /v1/sales/daily -> QueryService.ListDailySales",
    ].sort(),
  );
  const document = openApiDocument(routesOf(services), { title: "t", version: "v1" }) as any;
  expect(Object.keys(document.paths)).toHaveLength(11 + 3);
  expect(document.paths["/v1/orders"].post.responses["422"]).toBeDefined();
  expect(document.components.schemas["orderly.order.v1.Order"].properties.status).toEqual({ $ref: "#/components/schemas/orderly.order.v1.OrderStatus", description: "The status.", readOnly: true });
});

test("the OpenAPI document says what the protos say of each field: required (google.api.field_behavior), output only (readOnly), and protovalidate's rules", () => {
  const document = openApiDocument(routesOf([OrderService, InventoryService, QueryService]), { title: "t", version: "v1" }) as any;
  const order = document.components.schemas["orderly.order.v1.Order"];
  expect(order.required).toEqual(["customerId", "items"]);
  expect(Object.keys(order.properties).filter((name) => order.properties[name].readOnly)).toEqual([
    "id", "status", "totalMinor", "currencyCode", "rejectReason", "createTime", "updateTime", "version",
  ]);
  expect(order.properties.customerId.pattern).toBe("^[A-Za-z0-9._-]{1,64}$");
  // "." and ".." as a path segment are removed by URL clients (fetch, browsers, curl): such ids are refused.
  expect(order.properties.customerId.not).toEqual({ enum: [".", ".."] });
  expect(order.properties.items).toMatchObject({ minItems: 1, maxItems: 100 });
  const item = document.components.schemas["orderly.order.v1.OrderItem"];
  expect(item).toMatchObject({ required: ["sku", "quantity"], properties: { quantity: { minimum: 1, maximum: 1000 }, unitPriceMinor: { readOnly: true } } });

  // A restock's body may not be left out: its quantity is required. Its name rule, written for RE2, reads the same in ECMA-262.
  const restock = document.paths["/v1/inventory/{sku}:restock"].post;
  expect(restock.requestBody.required).toBe(true);
  const body = restock.requestBody.content["application/json"].schema;
  expect(body.required).toEqual(["quantity"]);
  expect(body.properties.unitPriceMinor.description).toMatch(/^Sets the unit price in minor units: [^]*\n\nat least 0, at most 90000000000 \(a 64-bit integer, as a string\)$/);
  const name = new RegExp(body.properties.name.pattern);
  expect(["Mug", "Café ☕"].map((n) => name.test(n))).toEqual([true, true]);
  expect(["Box\u001b[31m", "Box \u202egnp.exe", "a\u2028b", "\u0085"].map((n) => name.test(n))).toEqual([false, false, false, false]);
  expect(restock.parameters.find((p: { name: string }) => p.name === "sku").schema).toMatchObject({ pattern: "^[A-Za-z0-9._-]{1,64}$", not: { enum: [".", ".."] } });
  // A cancel's body is all optional: it may be left out.
  expect(document.paths["/v1/orders/{id}:cancel"].post.requestBody.required).toBe(false);
});

test("the OpenAPI document describes operations, schemas, fields, parameters and enum values in the words of the protos' comments", () => {
  const document = openApiDocument(routesOf([OrderService, InventoryService, QueryService]), { title: "t", version: "v1" }) as any;
  const create = document.paths["/v1/orders"].post;
  expect(create.description).toMatch(/^Places an order and reserves its stock\. Returns the CONFIRMED order, or\nFAILED_PRECONDITION /);
  expect(create.requestBody.content["application/json"].schema.description).toMatch(/^The order to place: customer_id and items/);
  const item = document.components.schemas["orderly.order.v1.OrderItem"];
  expect([item.description, item.properties.quantity.description]).toEqual(["One line of an order.", "Units: 1-1000."]);
  expect(document.components.schemas["orderly.order.v1.OrderStatus"].description).toBe(
    "The lifecycle of an order.\n\n- ORDER_STATUS_UNSPECIFIED: Not set.\n- ORDER_STATUS_PENDING: Recorded; its stock is being reserved.\n" +
      "- ORDER_STATUS_CONFIRMED: Its stock is reserved.\n- ORDER_STATUS_REJECTED: Its stock could not be reserved.\n- ORDER_STATUS_CANCELLED: Cancelled; its stock was released.",
  );
  const sku = document.paths["/v1/inventory/{sku}"].get.parameters.find((p: { name: string }) => p.name === "sku");
  expect(sku.schema.description).toBeTypeOf("string");
  // Every operation from the protos is described: each RPC with an HTTP route has a comment.
  const undescribed = Object.entries(document.paths).flatMap(([path, item]: [string, any]) =>
    Object.entries(item).filter(([, op]: [string, any]) => /^\w+Service_/.test(op.operationId) && op.description === undefined).map(([method]) => `${method} ${path}`),
  );
  expect(undescribed).toEqual([]);
});

test("the OpenAPI document names the bearer scheme every route needs, the error statuses each route can answer with and the reasons that give them, and 202 where an RPC may answer it", () => {
  const document = openApiDocument(routesOf([OrderService, InventoryService, QueryService]), { title: "t", version: "v1" }) as any;
  expect(document.security).toEqual([{ bearerAuth: [] }]);
  expect(document.components.securitySchemes.bearerAuth).toEqual({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
  const operations = Object.entries(document.paths as Record<string, Record<string, { responses: Record<string, any> }>>).flatMap(([path, item]) =>
    // A HEAD is its GET without the body (checked with the built-in paths).
    Object.entries(item).filter(([method]) => method !== "head").map(([method, operation]) => ({ route: `${method} ${path}`, operation })),
  );
  // An error names its reasons twice: in its description, for people, and in x-orderly-reasons, for code (/readyz's 503 is its report, not an error).
  const isError = (response: any) => response.content?.["application/json"]?.schema?.$ref === "#/components/schemas/Error";
  for (const { route, operation } of operations) {
    for (const [status, response] of Object.entries(operation.responses).filter(([status, response]) => Number(status) >= 400 && isError(response))) {
      const named: string[] = response["x-orderly-reasons"];
      expect({ route, status, named: named.length > 0, description: response.description.endsWith(`: ${named.join(", ")}`) }).toEqual({ route, status, named: true, description: true });
    }
  }
  // Every reason a client can meet is listed under the status the gateway answers it with, on some route. The
  // reason of ReleaseStock alone is not: it has no route (gRPC only).
  const grpcOnly = ["ORDER_NOT_ENDED"];
  for (const [reason, code] of Object.entries(reasons) as [Reason, Code][]) {
    const status = String(httpStatusFor(code, reason));
    const listed = operations.some(({ operation }) => operation.responses[status]?.["x-orderly-reasons"]?.includes(reason) === true);
    expect({ reason, listed }).toEqual({ reason, listed: ![...grpcOnly, "CANCELLED", "HOST_NOT_ALLOWED"].includes(reason) });
  }
  // A route lists the reasons its RPC declares in the proto (orderly.errors.v1.errors), and no other RPC's.
  const declared: Record<string, string[]> = {
    "get /v1/inventory/{sku}": ["ITEM_NOT_FOUND"],
    "get /v1/inventory": ["INVALID_PAGE_TOKEN"],
    "post /v1/inventory/{sku}:restock": ["IDEMPOTENCY_KEY_REUSED", "STOCK_LIMIT_EXCEEDED"],
    "post /v1/orders": ["IDEMPOTENCY_KEY_REUSED", "NOT_YOUR_CUSTOMER", "UNKNOWN_SKU", "INSUFFICIENT_STOCK", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "RESERVATION_MISMATCH"],
    "post /v1/orders/{id}:cancel": ["ORDER_NOT_FOUND", "ORDER_NOT_CANCELLABLE"],
    "get /v1/orders/{id}": ["ORDER_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "get /v1/orders/{id}/timeline": ["ORDER_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "get /v1/customers/{customer_id}/orders": ["INVALID_PAGE_TOKEN", "NOT_YOUR_CUSTOMER"],
    "get /v1/stock/{sku}": ["ITEM_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "get /v1/stock": ["INVALID_PAGE_TOKEN"],
    "get /v1/sales/daily": ["INVALID_PAGE_TOKEN"],
  };
  const listedOn = (operation: { responses: Record<string, any> }) =>
    Object.values(operation.responses).flatMap((response) => (response["x-orderly-reasons"] as Reason[] | undefined ?? []).filter((name) => DECLARED_ONLY.has(name)));
  expect(Object.fromEntries(operations.filter(({ route }) => route.includes("/v1/")).map(({ route, operation }) => [route, listedOn(operation).sort()]))).toEqual(
    Object.fromEntries(Object.entries(declared).map(([route, named]) => [route, [...named].sort()])),
  );
  // 404 where a path has a variable (ROUTE_NOT_FOUND: its value may no longer fit the template) or the RPC declares a NOT_FOUND reason.
  const common = ["200", "400", "401", "403", "405", "408", "417", "429", "431", "500", "501", "503", "504"];
  const withBody = [...common, "404", "413", "415"];
  const expected: Record<string, string[]> = {
    "post /v1/orders": [...withBody.filter((status) => status !== "404"), "202", "422"],
    "post /v1/orders/{id}:cancel": withBody,
    "post /v1/inventory/{sku}:restock": [...withBody, "422"],
    "get /v1/inventory": common,
    "get /v1/stock": common,
    "get /v1/sales/daily": common,
  };
  for (const { route, operation } of operations.filter(({ route }) => route.includes("/v1/"))) {
    expect({ route, responses: Object.keys(operation.responses).sort() }).toEqual({ route, responses: (expected[route] ?? [...common, "404"]).sort() });
    // 409 has no reason: an idempotency key reused with another body is 422. 501 is a service without the route's RPC (mid-upgrade).
    expect(operation.responses["409"]).toBeUndefined();
    expect(operation.responses["501"].description).toBe("Not Implemented: NOT_IMPLEMENTED");
    for (const [status, response] of Object.entries(operation.responses)) {
      expect({ route, status, requestId: response.headers["X-Request-Id"] }).toEqual({ route, status, requestId: { $ref: "#/components/headers/X-Request-Id" } });
    }
  }
  const cancel = document.paths["/v1/orders/{id}:cancel"].post.responses;
  expect(cancel["400"].description).toContain("MALFORMED_JSON");
  expect(document.paths["/v1/orders/{id}"].get.responses["400"].description).not.toContain("MALFORMED_JSON");
  expect(Object.keys(cancel["401"].headers)).toEqual(["X-Request-Id", "traceresponse", "WWW-Authenticate"]);
  expect(Object.keys(cancel["405"].headers)).toEqual(["X-Request-Id", "traceresponse", "Allow"]);
  expect(Object.keys(cancel["429"].headers)).toEqual(["X-Request-Id", "traceresponse", "Retry-After"]);
  expect(Object.keys(cancel["503"].headers)).toEqual(["X-Request-Id", "traceresponse", "Retry-After"]);
});

test("the OpenAPI document names the gateway's built-in paths, open to anyone, and X-Cache only on the reads the cache serves", () => {
  const routes = routesOf([OrderService, InventoryService, QueryService]);
  const document = openApiDocument(routes, { title: "t", version: "v1" }, new Set([`${QueryService.typeName}/GetOrder`])) as any;
  for (const path of ["/healthz", "/readyz", "/openapi.json"]) {
    expect(document.paths[path].get.security).toEqual([]);
    expect(Object.keys(document.paths[path])).toEqual(["get", "head"]);
  }
  // Every GET answers HEAD too: the same statuses and headers, no body.
  for (const [path, item] of Object.entries(document.paths) as [string, any][]) {
    expect({ path, head: item.head !== undefined }).toEqual({ path, head: item.get !== undefined });
    if (item.get === undefined) continue;
    expect(Object.keys(item.head.responses)).toEqual(Object.keys(item.get.responses));
    for (const [status, response] of Object.entries(item.head.responses) as [string, any][]) {
      expect({ path, status, content: response.content, headers: response.headers }).toEqual({ path, status, content: undefined, headers: item.get.responses[status].headers });
    }
    expect(item.head.operationId).toBe(`${item.get.operationId}_Head`);
  }
  expect(Object.keys(document.paths["/readyz"].get.responses)).toEqual(["200", "400", "405", "408", "417", "431", "503"]);
  expect(document.paths["/readyz"].get.responses["503"].content["application/json"].schema.required).toEqual(["status", "services"]);
  expect(document.paths["/healthz"].get.responses["200"].content["application/json"].schema.required).toEqual(["status", "inFlight", "eventLoopLagMs"]);
  expect(Object.keys(document.paths["/v1/orders/{id}"].get.responses["200"].headers)).toContain("X-Cache");
  expect(Object.keys(document.paths["/v1/stock/{sku}"].get.responses["200"].headers)).not.toContain("X-Cache");
  expect(document.components.headers["X-Request-Id"].schema.pattern).toBe("^[A-Za-z0-9._:-]{1,128}$");
});

test("an RPC is exposed over HTTP because of its annotation, with no gateway code, and appears in OpenAPI", async () => {
  const service = echoService();
  const routes = routesOf([service]);
  expect(routes.map((r) => `${r.httpMethod} ${r.template.source} -> ${r.method.name}`)).toEqual(["GET /v1/echo/{text} -> Echo"]);

  const openApi = openApiDocument(routes, { title: "echo", version: "v1" }) as any;
  expect(Object.keys(openApi.paths)).toEqual(["/healthz", "/readyz", "/openapi.json", "/v1/echo/{text}"]);
  expect(openApi.paths["/v1/echo/{text}"].get.operationId).toBe("EchoService_Echo");
  expect(openApi.paths["/v1/echo/{text}"].get.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toContain("query:suffix");

  const logger = silentLogger();
  const echo = { echo: (req: { text: string; suffix: string }) => ({ text: req.text + req.suffix }) };
  const grpcServer = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    logger,
    services: [{ service, handlers: echo } as unknown as ServiceRegistration],
  });
  const downstreams = connectDownstreams([{ name: "echo", service, address: `127.0.0.1:${grpcServer.port}` }], defaultDependencyPolicyOptions);
  const server = createServer(
    createGatewayHandler({
      routes,
      call: routeCaller(downstreams),
      readiness: readinessProbe(downstreams),
      openApi: () => openApi,
      logger,
      limits: { defaultTimeoutMs: 5000, maxTimeoutMs: 10_000, maxBodyBytes: 1024, maxJsonDepth: 32, maxInFlightPerCaller: 512 },
      // Routing only: every caller is an admin here (authentication has its own tests).
      auth: { known: () => undefined, verify: async () => ({ subject: "test", customerId: undefined, roles: ["admin"] }), linkMetadata: () => ({}) },
    }),
  );
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await api(baseUrl, "GET", "/v1/echo/hello%20world?suffix=!");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ text: "hello world!" });
    const unannotated = await api(baseUrl, "POST", "/test.echo.v1.EchoService/Whisper");
    expect(unannotated.status).toBe(404);
  } finally {
    server.close();
    for (const d of downstreams) d.connection.close();
    await grpcServer.close();
  }
});
