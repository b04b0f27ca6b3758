import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { reasonOf, startSystem, type System } from "../helpers/system.js";

describe("Idempotency-Key on CreateOrder", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem();
    await system.api("POST", "/v1/inventory/KEY-1:restock", { body: { quantity: 100, unitPriceMinor: "500" } });
  });
  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  const body = { customerId: "dana", items: [{ sku: "KEY-1", quantity: 4 }] };

  test("10 retries with the same key create one order and return identical bodies", async () => {
    const responses = [];
    for (let i = 0; i < 10; i++) {
      responses.push(await system.api("POST", "/v1/orders", { body, headers: { "idempotency-key": "retry-1" } }));
    }
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(responses.map((r) => r.text)).size).toBe(1);
    await system.api("GET", `/v1/orders/${responses[0]!.body.id}?minVersion=2`);
    const list = await system.api("GET", "/v1/customers/dana/orders");
    expect(list.body.orders.map((o: { id: string }) => o.id)).toEqual([responses[0]!.body.id]);
    expect((await system.api("GET", "/v1/inventory/KEY-1")).body).toMatchObject({ available: 96, reserved: 4 });
  });

  test("10 concurrent requests with one key create one order and reserve once", async () => {
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => system.api("POST", "/v1/orders", { body, headers: { "idempotency-key": "burst-1" } })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(responses.map((r) => r.body.id)).size).toBe(1);
    expect(new Set(responses.map((r) => r.text)).size).toBe(1);
    expect((await system.api("GET", "/v1/inventory/KEY-1")).body).toMatchObject({ available: 92, reserved: 8 });
  });

  test("reusing a key with another body is 422 IDEMPOTENCY_KEY_REUSED and changes nothing", async () => {
    const first = await system.api("POST", "/v1/orders", { body, headers: { "idempotency-key": "reuse-1" } });
    expect(first.status).toBe(200);
    const stock = (await system.api("GET", "/v1/inventory/KEY-1")).body;
    const other = await system.api("POST", "/v1/orders", {
      body: { ...body, items: [{ sku: "KEY-1", quantity: 5 }] },
      headers: { "idempotency-key": "reuse-1" },
    });
    expect(other.status).toBe(422);
    expect(reasonOf(other.body)).toBe("IDEMPOTENCY_KEY_REUSED");
    expect((await system.api("GET", "/v1/inventory/KEY-1")).body).toEqual(stock);
  });

  test("keys are scoped per customer", async () => {
    const a = await system.api("POST", "/v1/orders", { body, headers: { "idempotency-key": "shared-key" } });
    const b = await system.api("POST", "/v1/orders", {
      body: { ...body, customerId: "erin" },
      headers: { "idempotency-key": "shared-key" },
    });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body.id).not.toBe(b.body.id);
  });

  test("a rejected order's key replays the same rejection without reserving", async () => {
    const big = { customerId: "dana", items: [{ sku: "KEY-1", quantity: 1000 }] };
    const first = await system.api("POST", "/v1/orders", { body: big, headers: { "idempotency-key": "too-big" } });
    expect(first.status).toBe(400);
    expect(reasonOf(first.body)).toBe("INSUFFICIENT_STOCK");
    await system.api("POST", "/v1/inventory/KEY-1:restock", { body: { quantity: 2000 } });
    const again = await system.api("POST", "/v1/orders", { body: big, headers: { "idempotency-key": "too-big" } });
    expect(again.status).toBe(400);
    expect(again.text).toBe(first.text);
  });
});

describe("Idempotency-Key on Restock", () => {
  test("a retry applies nothing again; one that changes any field (the price too) is 422 and changes nothing", async () => {
    await using system = await startSystem();
    const restock = (body: Record<string, unknown>) => system.api("POST", "/v1/inventory/KEY-R:restock", { body, headers: { "idempotency-key": "restock-1" } });
    const first = await restock({ quantity: 5, unitPriceMinor: "700", name: "Kettle" });
    const again = await restock({ quantity: 5, unitPriceMinor: "700", name: "Kettle" });
    expect([first.status, again.status, again.body.available]).toEqual([200, 200, 5]);
    for (const change of [{ unitPriceMinor: "1" }, { name: "Cheap kettle" }, { currencyCode: "EUR" }, { quantity: 6 }]) {
      const other = await restock({ quantity: 5, unitPriceMinor: "700", name: "Kettle", ...change });
      const info = other.body.details?.find((d: { reason?: string }) => d.reason);
      expect({ change, status: other.status, reason: reasonOf(other.body), message: other.body.message, metadata: info?.metadata }).toEqual({
        change,
        status: 422,
        reason: "IDEMPOTENCY_KEY_REUSED",
        message: "this Idempotency-Key was used with a different restock",
        metadata: { sku: "KEY-R" },
      });
    }
    expect((await system.api("GET", "/v1/inventory/KEY-R")).body).toMatchObject({ available: 5, unitPriceMinor: "700", name: "Kettle", currencyCode: "USD" });
  });
});
