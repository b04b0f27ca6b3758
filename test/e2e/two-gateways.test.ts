import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape } from "../helpers/prometheus.js";
import { api, startSystem, type Gateway, type System } from "../helpers/system.js";

/**
 * Two gateways side by side, as behind a load balancer (DESIGN.md, "Scaling past one machine": the gateway is
 * stateless, and runs as many instances as needed): what a client's write through one shows through the other.
 * A is the system's own gateway (system.api), B a second process with the same environment on ports of its own.
 */
describe("two gateways in front of one system", () => {
  // An hour-long TTL would do as well: what B serves must change through the events, well before any entry expires.
  const TTL_MS = 60_000;
  /** How long B may take to show a write made through A: a fraction of the TTL. */
  const FOLLOW_MS = 10_000;
  let system: System;
  let b: Gateway;

  beforeAll(async () => {
    system = await startSystem({ GATEWAY_CACHE_TTL_MS: String(TTL_MS) });
    b = await system.startGateway();
    expect(b.process.port).not.toBe(system.gateway.port);
    expect(b.process.adminPort).not.toBe(system.gateway.adminPort);
    await system.api("POST", "/v1/inventory/TWO-1:restock", { body: { quantity: 100, unitPriceMinor: "250" } });
  });
  afterAll(async () => {
    await b?.[Symbol.asyncDispose]();
    await system?.[Symbol.asyncDispose]();
  });

  /** Whether B's cache hears the events (1), so its entries keep the full TTL rather than the outage's second. */
  const bCacheLive = async () => sampleValue(await scrape(`${b.adminUrl}/metrics`), "orderly_gateway_cache_live");

  test("an order created through A is read through B with A's version at once, as A would answer it", async () => {
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TWO-1", quantity: 2 }] } });
    expect(created.status).toBe(200);
    const throughB = await b.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
    expect(throughB.status).toBe(200);
    expect(throughB.body).toEqual(created.body);
    // The customer reads her own order through B too; another customer is refused there as through A.
    expect((await b.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { as: "alice" })).body).toEqual(created.body);
    expect((await b.api("GET", `/v1/orders/${created.body.id}`, { as: "bob" })).status).toBe(404);
  });

  test("B's cached order follows a cancel made through A, through the event, long before the TTL", async () => {
    await waitFor(async () => (await bCacheLive()) === 1, "B's cache to hear the events");
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TWO-1", quantity: 1 }] } });
    expect((await b.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`)).status).toBe(200);
    const cached = await waitFor(async () => {
      const r = await b.api("GET", `/v1/orders/${created.body.id}`);
      return r.headers.get("x-cache") === "hit" ? r : undefined;
    }, "a cached read through B");
    expect(cached.body.status).toBe("ORDER_STATUS_CONFIRMED");

    const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
    expect(cancelled.status).toBe(200);
    const seen = await waitFor(async () => {
      const r = await b.api("GET", `/v1/orders/${created.body.id}`);
      return r.body?.status === "ORDER_STATUS_CANCELLED" ? r : undefined;
    }, "B to show the cancel made through A", FOLLOW_MS);
    expect(seen.body).toEqual(cancelled.body);
    // Live throughout: the entry was dropped by the event, not cut to the outage's second.
    expect(await bCacheLive()).toBe(1);
    // And it is cached again at the new version.
    await waitFor(async () => {
      const r = await b.api("GET", `/v1/orders/${created.body.id}`);
      return r.headers.get("x-cache") === "hit" && r.body.status === "ORDER_STATUS_CANCELLED";
    }, "the cancelled order cached through B");
  });

  test("B's cached stock level follows an order made through A, through the events, long before the TTL", async () => {
    await waitFor(async () => (await bCacheLive()) === 1, "B's cache to hear the events");
    const restocked = await system.api("POST", "/v1/inventory/TWO-2:restock", { body: { quantity: 10, unitPriceMinor: "100" } });
    expect(restocked.status).toBe(200);
    // GetStockLevel takes no minVersion: B's reads wait for the projection of the restock.
    await waitFor(async () => (await b.api("GET", "/v1/stock/TWO-2")).body?.version === restocked.body.version, "the restock in the read model, through B");
    const cached = await waitFor(async () => {
      const r = await b.api("GET", "/v1/stock/TWO-2");
      return r.headers.get("x-cache") === "hit" ? r : undefined;
    }, "a cached stock read through B");
    expect(cached.body).toMatchObject({ available: 10, reserved: 0 });

    const ordered = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TWO-2", quantity: 3 }] } });
    expect(ordered.status).toBe(200);
    const seen = await waitFor(async () => {
      const r = await b.api("GET", "/v1/stock/TWO-2");
      return r.body?.reserved === 3 ? r : undefined;
    }, "B to show the stock the order through A reserved", FOLLOW_MS);
    expect(seen.body).toMatchObject({ sku: "TWO-2", available: 7, reserved: 3 });
    expect(await bCacheLive()).toBe(1);
  });

  test("a retry with the same Idempotency-Key through B gets the order created through A", async () => {
    const body = { customerId: "alice", items: [{ sku: "TWO-1", quantity: 1 }] };
    const headers = { "idempotency-key": "two-gateways-1" };
    const first = await system.api("POST", "/v1/orders", { body, headers });
    expect(first.status).toBe(200);
    const reserved = (await system.api("GET", "/v1/inventory/TWO-1")).body.reserved;
    const retried = await b.api("POST", "/v1/orders", { body, headers });
    expect(retried.status).toBe(200);
    expect(retried.body.id).toBe(first.body.id);
    expect(retried.text).toBe(first.text);
    // Reserved once: the retry created nothing.
    expect((await b.api("GET", "/v1/inventory/TWO-1")).body.reserved).toBe(reserved);
    // The key names that order whichever gateway the client reaches: a changed body is refused through B as through A.
    const reused = await b.api("POST", "/v1/orders", { body: { ...body, items: [{ sku: "TWO-1", quantity: 2 }] }, headers });
    expect(reused.status).toBe(422);
  });

  test("A stopped (SIGTERM) leaves B answering reads and writes", async () => {
    const before = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TWO-1", quantity: 1 }] } });
    expect(before.status).toBe(200);
    expect(await system.gateway.stop("SIGTERM", 20_000)).toBe(0);
    await expect(api(system.baseUrl, "GET", "/healthz")).rejects.toThrow();

    expect((await api(b.baseUrl, "GET", "/healthz")).status).toBe(200);
    expect((await api(b.baseUrl, "GET", "/readyz")).status).toBe(200);
    expect((await b.api("GET", `/v1/orders/${before.body.id}?minVersion=${before.body.version}`)).body).toEqual(before.body);
    const after = await b.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TWO-1", quantity: 1 }] } });
    expect(after.status).toBe(200);
    const read = await b.api("GET", `/v1/orders/${after.body.id}?minVersion=${after.body.version}`);
    expect(read.body).toEqual(after.body);
    expect(b.process.child.exitCode).toBeNull();
  });
});
