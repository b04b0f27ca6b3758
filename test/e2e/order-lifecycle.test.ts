import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { reasonOf, startSystem, type System } from "../helpers/system.js";

describe("order lifecycle over HTTP", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem();
  });
  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  test("restocking creates a SKU and returns the item with its stock levels", async () => {
    const restocked = await system.api("POST", "/v1/inventory/LAMP-1:restock", {
      body: { quantity: 10, name: "Desk lamp", unitPriceMinor: "2599", currencyCode: "EUR" },
    });
    expect(restocked.status).toBe(200);
    expect(restocked.body).toMatchObject({ sku: "LAMP-1", name: "Desk lamp", available: 10, reserved: 0, unitPriceMinor: "2599", currencyCode: "EUR" });
    const again = await system.api("POST", "/v1/inventory/LAMP-1:restock", { body: { quantity: 5 } });
    expect(again.body).toMatchObject({ available: 15, reserved: 0, name: "Desk lamp", version: "2" });
  });

  test("an order reserves stock, and cancelling it gives the stock back", async () => {
    await system.api("POST", "/v1/inventory/MUG-1:restock", { body: { quantity: 20, unitPriceMinor: "450" } });
    await system.api("POST", "/v1/inventory/TEA-1:restock", { body: { quantity: 5, unitPriceMinor: "1200" } });

    const created = await system.api("POST", "/v1/orders", {
      body: { customerId: "alice", items: [{ sku: "MUG-1", quantity: 3 }, { sku: "TEA-1", quantity: 2 }] },
    });
    expect(created.status).toBe(200);
    const order = created.body;
    expect(order.id).toMatch(/^ord_[0-9A-Z]{26}$/);
    expect(order).toMatchObject({
      customerId: "alice",
      status: "ORDER_STATUS_CONFIRMED",
      currencyCode: "USD",
      totalMinor: String(3 * 450 + 2 * 1200),
      items: [
        { sku: "MUG-1", quantity: 3, unitPriceMinor: "450", lineTotalMinor: "1350" },
        { sku: "TEA-1", quantity: 2, unitPriceMinor: "1200", lineTotalMinor: "2400" },
      ],
    });
    expect(new Date(order.createTime).getTime()).toBeGreaterThan(0);

    expect((await system.api("GET", "/v1/inventory/MUG-1")).body).toMatchObject({ available: 17, reserved: 3 });
    expect((await system.api("GET", "/v1/inventory/TEA-1")).body).toMatchObject({ available: 3, reserved: 2 });

    const fetched = await system.api("GET", `/v1/orders/${order.id}?minVersion=${order.version}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(order);

    const cancelled = await system.api("POST", `/v1/orders/${order.id}:cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id: order.id, status: "ORDER_STATUS_CANCELLED", version: "3" });
    expect((await system.api("GET", "/v1/inventory/MUG-1")).body).toMatchObject({ available: 20, reserved: 0 });
    expect((await system.api("GET", "/v1/inventory/TEA-1")).body).toMatchObject({ available: 5, reserved: 0 });

    const cancelledAgain = await system.api("POST", `/v1/orders/${order.id}:cancel`, { body: {} });
    expect(cancelledAgain.status).toBe(200);
    expect(cancelledAgain.body).toEqual(cancelled.body);

    const timeline = await system.api("GET", `/v1/orders/${order.id}/timeline?minVersion=3`);
    expect(timeline.body.changes.map((c: { status: string; version: string }) => `${c.version}:${c.status}`)).toEqual([
      "1:ORDER_STATUS_PENDING",
      "2:ORDER_STATUS_CONFIRMED",
      "3:ORDER_STATUS_CANCELLED",
    ]);
    expect((await system.api("GET", "/v1/inventory/MUG-1")).body).toMatchObject({ available: 20, reserved: 0 });
  });

  test("a customer's orders are listed newest first, a page at a time", async () => {
    await system.api("POST", "/v1/inventory/PEN-1:restock", { body: { quantity: 100, unitPriceMinor: "150" } });
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = await system.api("POST", "/v1/orders", { body: { customerId: "bob", items: [{ sku: "PEN-1", quantity: i }] } });
      expect(r.status).toBe(200);
      ids.push(r.body.id);
    }
    await system.api("POST", "/v1/orders", { body: { customerId: "carol", items: [{ sku: "PEN-1", quantity: 1 }] } });
    await waitFor(async () => (await system.api("GET", "/v1/customers/bob/orders")).body.orders.length === 5, "bob's orders in the read model");

    const seen: string[] = [];
    let token = "";
    for (let page = 0; page < 5; page++) {
      const r = await system.api("GET", `/v1/customers/bob/orders?pageSize=2${token ? `&pageToken=${token}` : ""}`);
      expect(r.status).toBe(200);
      expect(r.body.orders.length).toBeLessThanOrEqual(2);
      seen.push(...r.body.orders.map((o: { id: string; customerId: string }) => (expect(o.customerId).toBe("bob"), o.id)));
      token = r.body.nextPageToken;
      if (token === "") break;
    }
    expect(seen).toEqual([...ids].reverse());

    const none = await system.api("GET", "/v1/customers/nobody/orders");
    expect(none.body).toEqual({ orders: [], nextPageToken: "" });
  });

  test("an unknown order is 404 with reason ORDER_NOT_FOUND", async () => {
    for (const path of ["/v1/orders/ord_01J00000000000000000000000", "/v1/orders/ord_01J00000000000000000000000:cancel"]) {
      const r = await system.api(path.endsWith(":cancel") ? "POST" : "GET", path);
      expect(r.status).toBe(404);
      expect(r.body.code).toBe(5);
      expect(reasonOf(r.body)).toBe("ORDER_NOT_FOUND");
    }
    const item = await system.api("GET", "/v1/inventory/NO-SUCH-SKU");
    expect(item.status).toBe(404);
    expect(reasonOf(item.body)).toBe("ITEM_NOT_FOUND");
  });

  test("the request id is accepted or generated, and returned", async () => {
    const given = await system.api("GET", "/v1/inventory", { headers: { "x-request-id": "trace-me-123" } });
    expect(given.headers.get("x-request-id")).toBe("trace-me-123");
    const generated = await system.api("GET", "/v1/inventory");
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("health and readiness report every downstream service", async () => {
    const health = await system.api("GET", "/healthz");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok", inFlight: 0 });
    const ready = await system.api("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: "ready", services: { order: "SERVING", inventory: "SERVING", query: "SERVING" } });
  });
});

test("readiness is 503 when a downstream service is down, and requests to it fail fast with 503", async () => {
  await using system = await startSystem();
  await system.inventory.stop();
  const ready = await system.api("GET", "/readyz");
  expect(ready.status).toBe(503);
  expect(ready.body.services).toMatchObject({ order: "SERVING", inventory: "UNREACHABLE" });
  const started = Date.now();
  const r = await system.api("GET", "/v1/inventory/ANY-1", { headers: { "x-request-timeout": "3000" } });
  expect([503, 504]).toContain(r.status);
  expect(["DEPENDENCY_UNAVAILABLE", "CIRCUIT_OPEN", "DEADLINE_EXCEEDED"]).toContain(reasonOf(r.body));
  expect(Date.now() - started).toBeLessThan(3500);
  expect(r.text).not.toMatch(/\bat .*\.ts:\d+/);
});
