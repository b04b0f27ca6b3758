import { expect, test } from "vitest";
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

  const statuses = results.map((r) => r.status);
  const confirmed = results.filter((r) => r.status === 200);
  const rejected = results.filter((r) => r.status === 400);
  expect(results.filter((r) => r.status >= 500).map((r) => `${r.status} ${reasonOf(r.body)}: ${r.body?.message}`)).toEqual([]);
  expect(confirmed).toHaveLength(50);
  expect(confirmed.every((r) => r.body.status === "ORDER_STATUS_CONFIRMED")).toBe(true);
  expect(new Set(confirmed.map((r) => r.body.id)).size).toBe(50);
  expect(rejected).toHaveLength(150);
  expect(rejected.every((r) => reasonOf(r.body) === "INSUFFICIENT_STOCK")).toBe(true);

  const item = await system.api("GET", "/v1/inventory/HOT-1");
  expect(item.body).toMatchObject({ available: 0, reserved: 50 });
  expect(lowest).toBeGreaterThanOrEqual(0);
});
