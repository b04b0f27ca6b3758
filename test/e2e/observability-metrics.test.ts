import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape, type Sample } from "../helpers/prometheus.js";
import { api, authorization, startSystem, type System } from "../helpers/system.js";

/** Every process's /metrics, parsed (each on its admin port). */
async function scrapeAll(system: System): Promise<Record<"gateway" | "order" | "inventory" | "query", Sample[]>> {
  const [gateway, order, inventory, query] = await Promise.all([
    scrape(`${system.adminUrl}/metrics`),
    scrape(`http://127.0.0.1:${system.order.adminPort}/metrics`),
    scrape(`http://127.0.0.1:${system.inventory.adminPort}/metrics`),
    scrape(`http://127.0.0.1:${system.query.adminPort}/metrics`),
  ]);
  return { gateway, order, inventory, query };
}

const createOrder = "orderly.order.v1.OrderService/CreateOrder";
const reserveStock = "orderly.inventory.v1.InventoryService/ReserveStock";

test("every process serves Prometheus text whose counters and histograms move with traffic, and a dead dependency opens its breaker", async () => {
  await using system = await startSystem({ INVENTORY_BREAKER_FAILURES: "3", INVENTORY_BREAKER_HALF_OPEN_MS: "60000" });
  const before = await scrapeAll(system);
  for (const samples of Object.values(before)) {
    // The gateway's default metrics carry its prefix (orderly_gateway_process_…).
    expect(samples.find((s) => s.name.endsWith("process_cpu_user_seconds_total"))?.value).toBeGreaterThan(0);
  }
  expect(sampleValue(before.order, "orderly_dependency_breaker_state", { dependency: "inventory", state: "closed" })).toBe(1);
  expect(sampleValue(before.gateway, "orderly_dependency_breaker_state", { dependency: "inventory", state: "closed" })).toBe(1);
  expect(sampleValue(before.order, "orderly_ready", { check: "all" })).toBe(1);
  // Metrics and the status report show internal addresses and pids: the admin port serves them, never the API's.
  for (const path of ["/metrics", "/status", "/status.json"]) {
    expect((await api(system.baseUrl, "GET", path)).status).toBe(401);
    const asAdmin = await system.api("GET", path);
    expect([asAdmin.status, asAdmin.text]).toEqual([404, expect.stringContaining("ROUTE_NOT_FOUND")]);
  }
  const report = (await api(system.adminUrl, "GET", "/status.json")).body as { processes: { name: string; metricsUrl: string }[] };
  expect(report.processes.find((p) => p.name === "gateway")?.metricsUrl).toBe(`${system.adminUrl}/metrics`);

  await system.api("POST", "/v1/inventory/METRIC-1:restock", { body: { quantity: 100, name: "Mug", unitPriceMinor: "500", currencyCode: "USD" } });
  const orders = 5;
  for (let i = 0; i < orders; i++) {
    const r = await system.api("POST", "/v1/orders", { body: { customerId: "mia", items: [{ sku: "METRIC-1", quantity: 1 }] } });
    expect(r.status).toBe(200);
  }
  const rejected = await system.api("POST", "/v1/orders", { body: { customerId: "mia", items: [{ sku: "METRIC-1", quantity: 1000 }] } });
  expect(rejected.status).toBe(400);

  // Wait until the projector applied every order's events, then read every process again.
  const after = await waitFor(async () => {
    const now = await scrapeAll(system);
    const applied = sampleValue(now.query, "orderly_consumer_events_total", { consumer: "query-orders", outcome: "applied" });
    return applied >= orders * 2 ? now : undefined;
  }, "the projector to apply the orders' events");

  // The inventory ignores an OrderCreated that awaits no reservation (announced with its decision), and applies each decision.
  const inventoryEvents = { consumer: "inventory-order-events" };
  const inventoryTook = await waitFor(async () => {
    const { inventory } = await scrapeAll(system);
    return sampleValue(inventory, "orderly_consumer_events_total", { ...inventoryEvents, outcome: "applied" }) >= orders + 1 ? inventory : undefined;
  }, "the inventory to take the orders' events");
  expect(sampleValue(inventoryTook, "orderly_consumer_events_total", { ...inventoryEvents, outcome: "applied" })).toBe(orders + 1);
  expect(sampleValue(inventoryTook, "orderly_consumer_events_total", { ...inventoryEvents, outcome: "ignored" })).toBe(orders + 1);

  const gatewayRoute = { route: "POST /v1/orders" };
  expect(sampleValue(after.gateway, "orderly_gateway_requests_total", { ...gatewayRoute, code: "200" })).toBe(orders);
  expect(sampleValue(after.gateway, "orderly_gateway_requests_total", { ...gatewayRoute, code: "400" })).toBe(1);
  expect(sampleValue(after.gateway, "orderly_gateway_request_duration_seconds_count", gatewayRoute)).toBe(orders + 1);
  expect(sampleValue(after.gateway, "orderly_gateway_request_duration_seconds_bucket", { ...gatewayRoute, le: "+Inf" })).toBe(orders + 1);
  // A client that gives up on a request (here a wait for a version that never comes) is counted too, as 499.
  const readRoute = { route: "GET /v1/orders/{id}" };
  const gaveUp = fetch(`${system.baseUrl}/v1/orders/ord_never?minVersion=9`, { headers: { ...authorization(system.tokens, "admin"), "x-request-timeout": "20000" }, signal: AbortSignal.timeout(300) });
  await expect(gaveUp).rejects.toThrow();
  await waitFor(async () => sampleValue((await scrapeAll(system)).gateway, "orderly_gateway_requests_total", { ...readRoute, code: "499" }) === 1, "the abandoned read to be counted as 499");

  expect(sampleValue(after.order, "orderly_rpc_server_requests_total", { method: createOrder, code: "OK" })).toBe(orders);
  expect(sampleValue(after.order, "orderly_rpc_server_requests_total", { method: createOrder, code: "FAILED_PRECONDITION" })).toBe(1);
  expect(sampleValue(after.order, "orderly_rpc_server_duration_seconds_count", { method: createOrder })).toBe(orders + 1);
  expect(sampleValue(after.order, "orderly_sqlite_transaction_duration_seconds_count", { transaction: "begin" })).toBe(orders + 1);
  expect(sampleValue(after.order, "orderly_dependency_calls_total", { dependency: "inventory", outcome: "ok" })).toBe(orders);
  // The inventory refused one order for lack of stock: an answer of a dependency that is up, not a failure of it.
  expect(sampleValue(after.order, "orderly_dependency_calls_total", { dependency: "inventory", outcome: "refused" })).toBe(1);
  expect(sampleValue(after.order, "orderly_dependency_calls_total", { dependency: "inventory", outcome: "error" })).toBe(0);
  expect(sampleValue(after.gateway, "orderly_dependency_calls_total", { dependency: "order", outcome: "refused" })).toBe(1);
  // Each call's time as its caller saw it, by the same outcomes.
  expect(sampleValue(after.order, "orderly_dependency_call_duration_seconds_count", { dependency: "inventory", method: "ReserveStock", outcome: "ok" })).toBe(orders);
  expect(sampleValue(after.order, "orderly_dependency_call_duration_seconds_bucket", { dependency: "inventory", method: "ReserveStock", outcome: "refused", le: "+Inf" })).toBe(1);
  expect(sampleValue(after.order, "orderly_dependency_call_duration_seconds_sum", { dependency: "inventory", method: "ReserveStock", outcome: "ok" })).toBeGreaterThan(0);
  expect(sampleValue(after.gateway, "orderly_dependency_call_duration_seconds_count", { dependency: "order", method: "CreateOrder", outcome: "refused" })).toBe(1);
  expect(sampleValue(after.order, "orderly_outbox_published_total")).toBeGreaterThanOrEqual(orders * 2);
  expect(sampleValue(after.order, "orderly_outbox_backlog")).toBeGreaterThanOrEqual(0);
  expect(sampleValue(after.inventory, "orderly_rpc_server_requests_total", { method: reserveStock, code: "OK" })).toBe(orders);
  expect(sampleValue(after.inventory, "orderly_sqlite_transaction_duration_seconds_count", { transaction: "reserve" })).toBe(orders + 1);
  expect(sampleValue(after.query, "orderly_consumer_dead_letters", { consumer: "query-orders" })).toBe(0);
  expect(sampleValue(after.query, "orderly_consumer_deferred_events", { consumer: "query-orders" })).toBe(0);
  expect(sampleValue(after.query, "orderly_consumer_events_total", { consumer: "query-orders", outcome: "deferred" })).toBe(0);
  expect(after.query.some((s) => s.name === "orderly_consumer_pending" && s.labels.consumer === "query-orders")).toBe(true);
  expect(after.order.some((s) => s.name === "nodejs_eventloop_lag_p99_seconds")).toBe(true);

  // Kill inventory: the order service's calls fail until its breaker opens, and the metric says so.
  await system.inventory.stop("SIGKILL");
  const opened = await waitFor(async () => {
    await system.api("POST", "/v1/orders", { body: { customerId: "mia", items: [{ sku: "METRIC-1", quantity: 1 }] }, headers: { "x-request-timeout": "1500" } });
    const order = await scrape(`http://127.0.0.1:${system.order.adminPort}/metrics`);
    return sampleValue(order, "orderly_dependency_breaker_state", { dependency: "inventory", state: "open" }) === 1 ? order : undefined;
  }, "the order service's inventory breaker to open", 30_000);
  expect(sampleValue(opened, "orderly_dependency_breaker_state", { dependency: "inventory", state: "closed" })).toBe(0);
  // A call retries (ReserveStock is idempotent), so two calls' attempts can open it: at least one call failed.
  expect(sampleValue(opened, "orderly_dependency_calls_total", { dependency: "inventory", outcome: "error" })).toBeGreaterThanOrEqual(1);

  // NATS gone: a consumer's lag is unknown, so it has no sample (its last one is not held as if still true).
  await system.nats.kill();
  await waitFor(async () => {
    const query = await scrape(`http://127.0.0.1:${system.query.adminPort}/metrics`);
    return !query.some((s) => s.name === "orderly_consumer_pending" && s.labels.consumer === "query-orders");
  }, "the query's consumer lag to be unknown", 15_000);
});
