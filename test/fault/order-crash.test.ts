import { expect, test } from "vitest";
import { runPool } from "../helpers/load.js";
import { openReadOnly } from "../helpers/models.js";
import { waitFor } from "../helpers/processes.js";
import { startSystem, type ApiResponse } from "../helpers/system.js";
import { checkStockInvariants } from "./invariants.js";

const SKUS = ["OC-1", "OC-2", "OC-3", "OC-4"];
const STOCK = 1500;

test("the order service killed -9 at random points during 2,000 creations, clients retrying with the same key: no acknowledged order lost, none doubled, no orphan reservation", async () => {
  await using system = await startSystem({ PENDING_RECOVERY_AFTER_MS: "1000", PENDING_RECOVERY_INTERVAL_MS: "300" });
  for (const sku of SKUS) await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: STOCK, unitPriceMinor: "250" } });

  let crashes = 0;
  let crashing: Promise<void> | undefined;
  const crashAt = new Set([250, 700, 1100, 1500, 1850]);
  const acknowledged = new Map<string, string>();
  let retries = 0;
  let done = 0;
  const bodyOf = (i: number) => ({ customerId: `c-${i % 50}`, items: [{ sku: SKUS[i % SKUS.length]!, quantity: 1 + (i % 3) }] });
  await runPool(2000, 16, async (i) => {
    const key = `crash-${i}`;
    const body = bodyOf(i);
    for (let attempt = 0; ; attempt++) {
      let r: ApiResponse | undefined;
      try {
        r = await system.api("POST", "/v1/orders", { body, headers: { "idempotency-key": key, "x-request-timeout": "3000" } });
      } catch {
        r = undefined;
      }
      if (r && (r.status === 200 || r.status === 202 || r.status === 400)) {
        if (r.status !== 400) acknowledged.set(key, r.body.id);
        break;
      }
      retries++;
      if (attempt > 200) throw new Error(`order ${key} never succeeded: ${r?.status} ${r?.text}`);
      await crashing;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
    done++;
    if (crashAt.has(done) && !crashing) {
      crashes++;
      crashing = (async () => {
        await system.order.stop("SIGKILL");
        await system.restart("order");
      })();
      await crashing;
      crashing = undefined;
    }
  });
  expect(crashes).toBe(5);

  const settled = await waitFor(() => {
    const state = checkStockInvariants(system.dataDir, Object.fromEntries(SKUS.map((s) => [s, STOCK])));
    return state.pending === 0 && state.orphanReservations.length === 0 && state.badItems.length === 0 ? state : undefined;
  }, "every order to be settled with consistent stock", 60_000, 250);
  expect(settled.confirmedWithoutReservation).toEqual([]);

  const db = openReadOnly(system.dataDir, "order.db");
  const stored = new Set((db.prepare("SELECT id FROM orders").all() as { id: string }[]).map((r) => r.id));
  const keys = db.prepare("SELECT count(*) AS n, count(DISTINCT order_id) AS orders FROM idempotency_keys").get() as { n: number; orders: number };
  db.close();
  const lost = [...acknowledged.values()].filter((id) => !stored.has(id));
  expect(lost).toEqual([]);
  expect(new Set(acknowledged.values()).size).toBe(acknowledged.size);
  expect(keys.n).toBe(keys.orders);
  expect(stored.size).toBe(keys.orders);
  // As a client sees it (every tenth acknowledged key): its retry answers the same order, settled, and the order is read.
  const sample = [...acknowledged.entries()].filter((_, n) => n % 10 === 0);
  for (const [key, id] of sample) {
    const retried = await system.api("POST", "/v1/orders", { body: bodyOf(Number(key.slice("crash-".length))), headers: { "idempotency-key": key } });
    expect({ status: retried.status, id: retried.body.id }).toEqual({ status: 200, id });
    expect((await system.api("GET", `/v1/orders/${id}?minVersion=${retried.body.version}`, { headers: { "x-request-timeout": "10000" } })).body.id).toBe(id);
  }
  console.log(`[figures] 2,000 creations, ${crashes} kill -9 of the order service, ${retries} client retries: 0 lost, 0 doubled, 0 orphan reservations`);
});

test("the order service killed -9 while a cancel's release is on the wire: the order ends CANCELLED with its stock back, never CONFIRMED without it", async () => {
  await using system = await startSystem({}, { inventoryProxy: true });
  const proxy = system.inventoryProxy!;
  await system.api("POST", "/v1/inventory/CXL-1:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "cal", items: [{ sku: "CXL-1", quantity: 2 }] } });
  expect(created.body.status).toBe("ORDER_STATUS_CONFIRMED");
  // From now on every byte between the order service and inventory takes a second each way: the release
  // reaches inventory, and the order service is killed before the answer comes back.
  proxy.delay(1000);
  const cancelling = system.api("POST", `/v1/orders/${created.body.id}:cancel`, { headers: { "x-request-timeout": "10000" } }).catch(() => undefined);
  const inventoryDb = openReadOnly(system.dataDir, "inventory.db");
  try {
    const state = () => (inventoryDb.prepare("SELECT state FROM reservations WHERE order_id = ?").get(created.body.id) as { state: number }).state;
    await waitFor(() => state() === 2, "inventory to release the order's stock", 15_000, 20);
  } finally {
    inventoryDb.close();
  }
  await system.order.stop("SIGKILL");
  proxy.pass();
  await cancelling;
  await system.restart("order");
  // The order reads as cancelled (its OrderCancelled event was committed with the cancel), and its stock is back.
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}`)).body.status === "ORDER_STATUS_CANCELLED", "the order to read as cancelled", 20_000, 100);
  expect((await system.api("GET", "/v1/inventory/CXL-1")).body).toMatchObject({ available: 10, reserved: 0 });
  expect(checkStockInvariants(system.dataDir, { "CXL-1": 10 })).toMatchObject({ confirmedWithoutReservation: [], orphanReservations: [], badItems: [] });
});
