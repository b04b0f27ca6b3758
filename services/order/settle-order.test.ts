import { create } from "@bufbuild/protobuf";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { ReservationSchema, type InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { CreateOrderRequestSchema, OrderStatus } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { Outbox } from "../../shared/events/index.js";
import type { Client } from "../../shared/grpc/index.js";
import { createLogger, silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { callContext } from "../../test/helpers/call-context.js";
import { inventoryClientOver } from "../../test/helpers/inventory-client.js";
import { inventoryMigrations } from "../inventory/schema.js";
import { InventoryStore, ReservationState } from "../inventory/store.js";
import { createOrder } from "./handlers/create-order.js";
import { PendingRecovery } from "./pending-recovery.js";
import { orderMigrations } from "./schema.js";
import { settleOrder } from "./settle-order.js";
import { OrderStore, Status } from "./store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const unknownSku = () => new OrderlyError("UNKNOWN_SKU", "unknown SKU S", { metadata: { sku: "S" } });
const reservation = () => ({
  reservation: create(ReservationSchema, { lines: [{ sku: "S", quantity: 1, unitPriceMinor: 100n }], totalMinor: 100n, currencyCode: "USD" }),
});

/**
 * A store on a real SQLite file, and an inventory whose ReserveStock answers
 * each call with the next of `reserve` (each may wait for the test), and
 * whose ReleaseStock calls are recorded.
 */
function setup(...reserve: Array<() => Promise<unknown>>) {
  const dir = mkdtempSync(join(tmpdir(), "orderly-settle-"));
  dirs.push(dir);
  const db = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  const store = new OrderStore(db, new Outbox(db));
  const released: string[] = [];
  const inventory = {
    reserveStock: () => reserve.shift()!(),
    releaseStock: async ({ orderId }: { orderId: string }) => {
      released.push(orderId);
      return {};
    },
  } as unknown as Client<typeof InventoryService>;
  return { db, store, inventory, released };
}

const options = () => ({ deadline: Date.now() + 5000, requestId: "r", traceContext: ROOT_CONTEXT });
const alice = { subject: "customer:alice", customerId: "alice", roles: ["customer" as const] };

test("an order a request with its key accepted (202) is kept, REJECTED, when another's reservation, begun before, finds a SKU unknown", async () => {
  const { db, store, inventory } = setup(async () => Promise.reject(unknownSku()));
  const begun = store.begin({ id: "ord_1", customerId: "alice", items: [{ sku: "S", quantity: 1 }], requestId: "k", requestHash: "h" }).order;
  // The first request could not reach the inventory in time: the order is accepted as PENDING, its 202 sent.
  store.acceptAwaitingReservation(begun.id);
  // The second request settles the order as it found it at its begin (not announced then).
  const settled = await settleOrder({ store, inventory, degrade: true }, begun, options(), silentLogger());
  expect(settled).toMatchObject({ id: "ord_1", status: Status.REJECTED, rejectReason: "UNKNOWN_SKU" });
  expect(store.get("ord_1")?.status).toBe(Status.REJECTED);
  db.close();
});

test("requests with one key racing a restock: the one whose SKU was unknown discards the order, the other begins afresh and is confirmed, releasing what it reserved for the discarded one", async () => {
  let letFirstReserve!: () => void;
  const firstMayReserve = new Promise<void>((resolve) => (letFirstReserve = resolve));
  const { db, store, inventory, released } = setup(
    async () => {
      await firstMayReserve;
      return reservation();
    },
    async () => Promise.reject(unknownSku()),
    async () => reservation(),
  );
  let ids = 0;
  const handler = createOrder({ store, inventory, degrade: true, newId: () => `ord_${++ids}` });
  const request = create(CreateOrderRequestSchema, { order: { customerId: "alice", items: [{ sku: "S", quantity: 1 }] }, requestId: "k" });
  const context = () => callContext({ method: "orderly.order.v1.OrderService/CreateOrder", principal: alice });
  // The first request's reservation waits (the SKU is being restocked); the second (same key: the same order) finds it unknown.
  const first = handler(request, context());
  const second = handler(request, context());
  await expect(second).rejects.toMatchObject({ reason: "UNKNOWN_SKU" });
  expect(store.get("ord_1")).toBeUndefined();
  letFirstReserve();
  const answered = await first;
  expect(answered.order).toMatchObject({ id: "ord_3", status: OrderStatus.CONFIRMED });
  expect(store.get("ord_3")?.status).toBe(Status.CONFIRMED);
  // Released by the request that discarded it, and again by the first, which had reserved for it meanwhile (a release is idempotent).
  expect(released).toEqual(["ord_1", "ord_1"]);
  // The key now names the confirmed order.
  expect((await handler(request, context())).order).toMatchObject({ id: "ord_3", status: OrderStatus.CONFIRMED });
  db.close();
});

test("a ReserveStock still on its way when its order is discarded (an unknown SKU) reserves nothing once the SKU exists: the discard released the order's id", async () => {
  const dir = mkdtempSync(join(tmpdir(), "orderly-discarded-"));
  dirs.push(dir);
  const orderDb = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  const invDb = openDatabase({ file: join(dir, "inventory.db"), migrations: inventoryMigrations });
  const orders = new OrderStore(orderDb, new Outbox(orderDb), () => Date.now() - 60 * 60 * 1000);
  const inventory = new InventoryStore(invDb, new Outbox(invDb));

  // The network: the first ReserveStock times out at the order service while still on its way to the
  // inventory (held here); every later call goes through at once.
  const inTransit: Array<() => void> = [];
  let calls = 0;
  const client = inventoryClientOver(inventory, async (call, run) => {
    if (call.method === "reserve" && ++calls === 1) {
      inTransit.push(() => {
        try {
          run();
        } catch {
          // Its answer goes nowhere: the caller gave up.
        }
      });
      throw new OrderlyError("DEADLINE_EXCEEDED", "the reservation did not answer in time");
    }
    return run();
  });
  const deps = { store: orders, inventory: client, degrade: false };

  // An order of a SKU the inventory does not know yet (fail-fast: the timeout leaves it PENDING, 504 to the client).
  const order = orders.begin({ id: "ord_stray", customerId: "alice", items: [{ sku: "NEW", quantity: 3 }], requestId: "k", requestHash: "h" }).order;
  await expect(settleOrder(deps, order, { deadline: Date.now() + 5000, requestId: "r", traceContext: ROOT_CONTEXT }, silentLogger())).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });

  // The recovery sweep resumes it: the SKU is unknown, so the order (never announced) is discarded.
  const recovery = new PendingRecovery({ ...deps, logger: silentLogger(), afterMs: 1000, intervalMs: 3_600_000, budgetMs: 1000 });
  await recovery.sweep();
  expect(orders.get("ord_stray")).toBeUndefined();

  // The SKU is stocked; then the first call, still in transit, reaches the inventory.
  inventory.restock({ sku: "NEW", quantity: 3, unitPriceMinor: 100 });
  inTransit.shift()!();

  await recovery.sweep();
  const stray = inventory.getReservation("ord_stray");
  const item = inventory.getItem("NEW")!;
  orderDb.close();
  invDb.close();
  // The discard's release left a tombstone: the late reserve was refused, and all 3 units are available (no event or
  // recovery would free them otherwise, as no order has that id: only the inventory's expiry sweep, 15 minutes later).
  expect({ state: stray?.state, available: item.available, reserved: item.reserved }).toEqual({ state: ReservationState.RELEASED, available: 3, reserved: 0 });
});

test("a request naming an unknown SKU changes nothing at the inventory: the order it began and discarded is not released (no call reserved for it)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "orderly-discarded-"));
  dirs.push(dir);
  const orderDb = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  const invDb = openDatabase({ file: join(dir, "inventory.db"), migrations: inventoryMigrations });
  const orders = new OrderStore(orderDb, new Outbox(orderDb));
  const inventory = new InventoryStore(invDb, new Outbox(invDb));
  const calls: string[] = [];
  const client = inventoryClientOver(inventory, async (call, run) => {
    calls.push(`${call.method} ${call.orderId}`);
    return run();
  });
  let ids = 0;
  const handler = createOrder({ store: orders, inventory: client, degrade: true, newId: () => `ord_${++ids}` });
  for (const sku of ["NOPE-1", "NOPE-2"]) {
    const request = create(CreateOrderRequestSchema, { order: { customerId: "alice", items: [{ sku, quantity: 1 }] } });
    await expect(handler(request, callContext({ method: "orderly.order.v1.OrderService/CreateOrder", principal: alice }))).rejects.toMatchObject({ reason: "UNKNOWN_SKU" });
  }
  expect(calls).toEqual(["reserve ord_1", "reserve ord_2"]);
  expect(invDb.prepare("SELECT count(*) FROM reservations").pluck().get()).toBe(0);
  orderDb.close();
  invDb.close();
});

test("an order is said to be accepted as PENDING once, when it is, not again each time the recovery loop tries it", async () => {
  const unavailable = () => Promise.reject(new OrderlyError("DEPENDENCY_UNAVAILABLE", "inventory is down", { metadata: { dependency: "inventory" } }));
  const { store, inventory } = setup(unavailable, unavailable, unavailable);
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("order", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const begun = store.begin({ id: "ord_1", customerId: "alice", items: [{ sku: "S", quantity: 1 }], requestId: "k", requestHash: "h" }).order;
  const deps = { store, inventory, degrade: true };
  expect((await settleOrder(deps, begun, options(), logger))?.status).toBe(Status.PENDING);
  // The recovery loop's tries, with the order as it reads it then (announced).
  for (let i = 0; i < 2; i++) expect((await settleOrder(deps, store.get("ord_1")!, options(), logger))?.status).toBe(Status.PENDING);
  expect(lines.filter((line) => String(line.msg).includes("accepted as PENDING")).map((line) => line.orderId)).toEqual(["ord_1"]);
});
