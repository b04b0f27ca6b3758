import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { reasonOf, startSystem } from "../helpers/system.js";

test("200 concurrent orders of 1 unit against 50 units: exactly 50 succeed, the rest get INSUFFICIENT_STOCK", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/HOT-1:restock", { body: { quantity: 50, unitPriceMinor: "999" } });

  let lowest = Infinity;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const item = await system.api("GET", "/v1/inventory/HOT-1");
      lowest = Math.min(lowest, item.body.available);
    }
  })();

  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      system.api("POST", "/v1/orders", {
        body: { customerId: `buyer-${i % 17}`, items: [{ sku: "HOT-1", quantity: 1 }] },
        headers: { "x-request-timeout": "30000" },
      }),
    ),
  );
  sampling = false;
  await sampler;

  expect(results.filter((r) => r.status >= 500).map((r) => `${r.status} ${reasonOf(r.body)}: ${r.body?.message}`)).toEqual([]);
  // On a loaded machine a reservation can outlast its attempt timeout: the order is then accepted as
  // PENDING (202) and settled through events. Wait for those to settle; the invariant is the same.
  const settled = await Promise.all(
    results.map(async (r) => {
      if (r.status !== 202) return { status: r.status === 200 ? r.body.status : "REJECTED", id: r.body?.id, reason: reasonOf(r.body) };
      const order = await waitFor(async () => {
        const read = await system.api("GET", `/v1/orders/${r.body.id}`);
        return read.status === 200 && read.body.status !== "ORDER_STATUS_PENDING" ? read.body : undefined;
      }, `order ${r.body.id} to settle`, 60_000, 200);
      return order.status === "ORDER_STATUS_CONFIRMED" ? { status: order.status, id: order.id } : { status: "REJECTED", id: order.id, reason: order.rejectReason };
    }),
  );
  const confirmed = settled.filter((o) => o.status === "ORDER_STATUS_CONFIRMED");
  const rejected = settled.filter((o) => o.status === "REJECTED");
  expect(confirmed).toHaveLength(50);
  expect(new Set(confirmed.map((o) => o.id)).size).toBe(50);
  expect(rejected).toHaveLength(150);
  expect(rejected.every((o) => o.reason === "INSUFFICIENT_STOCK")).toBe(true);

  const item = await system.api("GET", "/v1/inventory/HOT-1");
  expect(item.body).toMatchObject({ available: 0, reserved: 50 });
  expect(lowest).toBeGreaterThanOrEqual(0);
  // Every line the gateway wrote under 200 requests at once is its JSON log (Node's warning about the listeners of many
  // waiting requests was a line of its own).
  expect(system.gateway.logs.filter((line) => !line.startsWith("{"))).toEqual([]);
});
