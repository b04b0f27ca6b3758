import { expect, test } from "vitest";
import { createLogger } from "../../shared/logging/index.js";
import { startOtlpReceiver } from "../helpers/otlp-receiver.js";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

/** The trace ids of the log lines (pino JSON) of a process. */
function logLinesOfTrace(logs: readonly string[], traceId: string): Record<string, unknown>[] {
  return logs
    .filter((line) => line.includes(traceId))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.traceId === traceId);
}

test("one trace follows an order from the gateway through order, inventory, the SQLite transactions, the relay and the projector, and into their logs", async () => {
  await using receiver = await startOtlpReceiver();
  // debug: the gateway logs each request and the services each call and event at debug.
  await using system = await startSystem({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100", LOG_LEVEL: "debug" });
  const restock = await system.api("POST", "/v1/inventory/TRACE-1:restock", {
    body: { quantity: 5, name: "Traced mug", unitPriceMinor: "1000", currencyCode: "USD" },
  });
  expect(restock.status).toBe(200);

  const created = await system.api("POST", "/v1/orders", { body: { customerId: "tracy", items: [{ sku: "TRACE-1", quantity: 2 }] } });
  expect(created.status).toBe(200);
  const traceresponse = created.headers.get("traceresponse");
  expect(traceresponse).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const traceId = traceresponse!.split("-")[1]!;
  const requestId = created.headers.get("x-request-id")!;

  // Each process exports on its own schedule: wait until every span asserted below has arrived.
  const expected: [service: string, kind: number, name: string][] = [
    ["gateway", SERVER, "POST /v1/orders"],
    ["gateway", CLIENT, "orderly.order.v1.OrderService/CreateOrder"],
    ["order", SERVER, "orderly.order.v1.OrderService/CreateOrder"],
    ["order", CLIENT, "orderly.inventory.v1.InventoryService/ReserveStock"],
    ["order", 1, "sqlite begin"],
    ["order", 1, "sqlite decide"],
    ["order", PRODUCER, "publish orderly.orders.created"],
    ["order", PRODUCER, "publish orderly.orders.confirmed"],
    ["inventory", SERVER, "orderly.inventory.v1.InventoryService/ReserveStock"],
    ["inventory", 1, "sqlite reserve"],
    ["inventory", PRODUCER, "publish orderly.inventory.reserved"],
    ["inventory", CONSUMER, "process orderly.orders.confirmed"],
    ["query", CONSUMER, "process orderly.orders.created"],
    ["query", CONSUMER, "process orderly.orders.confirmed"],
  ];
  const spans = await waitFor(() => {
    const found = receiver.trace(traceId);
    const missing = expected.filter(([service, kind, name]) => !found.some((s) => s.service === service && s.kind === kind && s.name === name));
    return missing.length === 0 ? found : undefined;
  }, "the order's spans from every process");

  const of = (service: string, kind: number, name: string | RegExp) =>
    spans.filter((s) => s.service === service && s.kind === kind && (typeof name === "string" ? s.name === name : name.test(s.name)));
  const [http] = of("gateway", SERVER, "POST /v1/orders");
  expect(http).toBeDefined();
  expect(http!.attributes["http.response.status_code"]).toBe(200);
  const [gatewayCall] = of("gateway", CLIENT, "orderly.order.v1.OrderService/CreateOrder");
  expect(gatewayCall?.parentSpanId).toBe(http!.spanId);
  const [orderServer] = of("order", SERVER, "orderly.order.v1.OrderService/CreateOrder");
  expect(orderServer?.parentSpanId).toBe(gatewayCall!.spanId);
  expect(orderServer!.attributes["orderly.request_id"]).toBe(requestId);
  const [reserveCall] = of("order", CLIENT, "orderly.inventory.v1.InventoryService/ReserveStock");
  expect(reserveCall?.parentSpanId).toBe(orderServer!.spanId);
  const [inventoryServer] = of("inventory", SERVER, "orderly.inventory.v1.InventoryService/ReserveStock");
  expect(inventoryServer?.parentSpanId).toBe(reserveCall!.spanId);
  // The SQLite transactions, each in the span of the call that ran it.
  expect(of("order", 1, "sqlite begin")[0]?.parentSpanId).toBe(orderServer!.spanId);
  expect(of("order", 1, "sqlite decide")[0]?.parentSpanId).toBe(orderServer!.spanId);
  expect(of("inventory", 1, "sqlite reserve")[0]?.parentSpanId).toBe(inventoryServer!.spanId);
  // The relays publish the events the transactions wrote, and the consumers process them.
  const published = of("order", PRODUCER, /^publish orderly\.orders\./);
  expect(published.map((s) => s.name).sort()).toEqual(["publish orderly.orders.confirmed", "publish orderly.orders.created"]);
  expect(of("inventory", PRODUCER, "publish orderly.inventory.reserved")).toHaveLength(1);
  const projected = of("query", CONSUMER, /^process orderly\.orders\./);
  expect(projected.length).toBeGreaterThanOrEqual(2);
  for (const span of projected) expect(published.map((p) => p.spanId)).toContain(span.parentSpanId);
  expect(new Set(spans.map((s) => s.service))).toEqual(new Set(["gateway", "order", "inventory", "query"]));

  // The same trace id is in the log lines of every process, next to the request id.
  const gatewayLines = logLinesOfTrace(system.gateway.logs, traceId);
  expect(gatewayLines.some((l) => l.msg === "request" && l.requestId === requestId)).toBe(true);
  const orderLines = logLinesOfTrace(system.order.logs, traceId);
  expect(orderLines.some((l) => l.msg === "call ok" && l.requestId === requestId)).toBe(true);
  expect(orderLines.some((l) => l.msg === "event published" && l.requestId === requestId)).toBe(true);
  const inventoryLines = logLinesOfTrace(system.inventory.logs, traceId);
  expect(inventoryLines.some((l) => l.msg === "call ok" && l.requestId === requestId)).toBe(true);
  // Each hop had less of the request's 5 s budget left than the one before it.
  const budgetOf = (lines: typeof orderLines) => lines.find((l) => l.msg === "call ok" && l.requestId === requestId)?.budgetMs as number;
  expect(budgetOf(orderLines)).toBeLessThanOrEqual(5000);
  expect(budgetOf(inventoryLines)).toBeLessThan(budgetOf(orderLines));
  await waitFor(() => logLinesOfTrace(system.query.logs, traceId).some((l) => l.msg === "event applied" && l.requestId === requestId), "the projector's log line");

  // A read the gateway's cache answers is traced too: its own SERVER span, and no call.
  const hit = await waitFor(async () => {
    const r = await system.api("GET", `/v1/orders/${created.body.id}`);
    return r.headers.get("x-cache") === "hit" ? r : undefined;
  }, "a cached read");
  const hitTrace = hit.headers.get("traceresponse")!.split("-")[1]!;
  const hitSpans = await waitFor(() => {
    const found = receiver.trace(hitTrace);
    return found.some((s) => s.kind === SERVER) ? found : undefined;
  }, "the cached read's span");
  expect(hitSpans.map((s) => [s.service, s.kind, s.name, s.attributes["http.response.status_code"]])).toEqual([["gateway", SERVER, "GET /v1/orders/{id}", 200]]);

  // A client on a later version of traceparent is still followed (W3C Trace Context's versioning); the span has the
  // request's path and query apart, as OpenTelemetry's semantic conventions name them.
  const clientTrace = "0af7651916cd43dd8448eb211c80319c";
  const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, {
    headers: { traceparent: `01-${clientTrace}-b7ad6b7169203331-01-later-fields` },
  });
  expect(read.status).toBe(200);
  expect(read.headers.get("traceresponse")?.split("-")[1]).toBe(clientTrace);
  const [readSpan] = await waitFor(() => {
    const found = receiver.trace(clientTrace).filter((s) => s.service === "gateway" && s.kind === SERVER);
    return found.length > 0 ? found : undefined;
  }, "the read's span");
  expect([readSpan!.attributes["url.path"], readSpan!.attributes["url.query"]]).toEqual([`/v1/orders/${created.body.id}`, `minVersion=${created.body.version}`]);
});

test("without an OTLP endpoint nothing is exported, yet trace ids still reach every log line", async () => {
  await using system = await startSystem({ LOG_LEVEL: "debug" });
  await system.api("POST", "/v1/inventory/TRACE-2:restock", { body: { quantity: 5, name: "Mug", unitPriceMinor: "1000", currencyCode: "USD" } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "tracy", items: [{ sku: "TRACE-2", quantity: 1 }] } });
  expect(created.status).toBe(200);
  // Not sampled (flags 00): ids only.
  const traceresponse = created.headers.get("traceresponse")!;
  expect(traceresponse).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  const traceId = traceresponse.split("-")[1]!;
  // A cache hit logs nothing and records nothing, so it names no trace.
  const hit = await waitFor(async () => {
    const r = await system.api("GET", `/v1/orders/${created.body.id}`);
    return r.headers.get("x-cache") === "hit" ? r : undefined;
  }, "a cached read");
  expect(hit.headers.get("traceresponse")).toBeNull();
  expect(logLinesOfTrace(system.order.logs, traceId).length).toBeGreaterThan(0);
  expect(logLinesOfTrace(system.inventory.logs, traceId).length).toBeGreaterThan(0);
  await waitFor(() => logLinesOfTrace(system.query.logs, traceId).length > 0, "the projector's log line with the trace id");
});

test("no log line carries an Authorization header, a token or a password", () => {
  const lines: string[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(line) });
  logger.info({ headers: { authorization: "Bearer secret-1" }, metadata: { authorization: "Bearer secret-2" }, token: "secret-3", password: "secret-4" }, "hello");
  expect(lines.join("")).not.toMatch(/secret-\d/);
  expect(lines.join("")).toContain("[redacted]");
});
