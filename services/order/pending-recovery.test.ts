import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { ReservationSchema, type InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { Outbox } from "../../shared/events/index.js";
import type { Client } from "../../shared/grpc/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { PendingRecovery } from "./pending-recovery.js";
import { orderMigrations } from "./schema.js";
import { OrderStore, Status } from "./store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A store on a real SQLite file whose writes happen an hour ago (in the order made), and a recovery over it with `reserve`
 * as the inventory (degrading, or failing fast) that leaves accepted orders to the events for `announcedAfterMs` (two hours
 * unless told: longer than their age).
 */
function setup(reserve: (orderId: string) => Promise<unknown>, degrade = true, announcedAfterMs = 2 * 60 * 60 * 1000) {
  const dir = mkdtempSync(join(tmpdir(), "orderly-recovery-"));
  dirs.push(dir);
  const db = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  let tick = 0;
  const store = new OrderStore(db, new Outbox(db), () => Date.now() - 60 * 60 * 1000 + tick++);
  const inventory = { reserveStock: ({ orderId }: { orderId: string }) => reserve(orderId) } as unknown as Client<typeof InventoryService>;
  const recovery = new PendingRecovery({ store, inventory, degrade, logger: silentLogger(), afterMs: 1000, announcedAfterMs, intervalMs: 60_000, budgetMs: 1000 });
  const begin = (id: string) => store.begin({ id, customerId: "c", items: [{ sku: "S", quantity: 1 }], requestId: "", requestHash: "" }).order;
  return { db, store, recovery, begin };
}

const reserved = async () => ({
  reservation: create(ReservationSchema, { lines: [{ sku: "S", quantity: 1, unitPriceMinor: 100n }], totalMinor: 100n, currencyCode: "USD" }),
});

test("orders accepted awaiting an async reservation do not hide an interrupted one behind them", async () => {
  const { db, store, recovery, begin } = setup(reserved);
  // 150 orders handed to the events (announced), older than the one interrupted mid-way.
  for (let i = 0; i < 150; i++) store.acceptAwaitingReservation(begin(`ord_async_${i}`).id, {});
  begin("ord_interrupted");
  expect(await recovery.sweep()).toBe(1);
  expect(store.get("ord_interrupted")?.status).toBe(Status.CONFIRMED);
  expect(store.get("ord_async_0")?.status).toBe(Status.PENDING);
  db.close();
});

test("orders accepted awaiting an async reservation and still PENDING past announcedAfterMs (their outcome lost) are resumed too, after the others; the inventory not answering ends the sweep", async () => {
  let answering = false;
  const reservedFor: string[] = [];
  const { db, store, recovery, begin } = setup(
    async (orderId) => {
      if (!answering) throw new OrderlyError("DEPENDENCY_UNAVAILABLE", "the inventory is down");
      reservedFor.push(orderId);
      return reserved();
    },
    true,
    30 * 60 * 1000,
  );
  for (let i = 0; i < 3; i++) store.acceptAwaitingReservation(begin(`ord_async_${i}`).id, {});
  begin("ord_interrupted");
  // Degrading: the interrupted order is handed to the events, and the first accepted one, asked again, is still PENDING.
  expect(await recovery.sweep()).toBe(1);
  expect(reservedFor).toEqual([]);
  expect(store.get("ord_interrupted")).toMatchObject({ status: Status.PENDING, announced: true });
  answering = true;
  expect(await recovery.sweep()).toBe(4);
  expect(reservedFor).toEqual(["ord_async_0", "ord_async_1", "ord_async_2", "ord_interrupted"]);
  for (const id of reservedFor) expect(store.get(id)?.status).toBe(Status.CONFIRMED);
  db.close();
});

test("an order the inventory keeps refusing for a reason of its own does not hold up the rest; inventory down ends the sweep", async () => {
  const { db, store, recovery, begin } = setup(async (orderId) => {
    if (orderId === "ord_mismatch") throw new OrderlyError("RESERVATION_MISMATCH", "reserved with other lines");
    return reserved();
  });
  begin("ord_mismatch");
  begin("ord_fine");
  expect(await recovery.sweep()).toBe(1);
  expect([store.get("ord_mismatch")?.status, store.get("ord_fine")?.status]).toEqual([Status.PENDING, Status.CONFIRMED]);
  db.close();

  // More than a page of them: the sweep pages on past them.
  const many = setup(async (orderId) => {
    if (orderId.startsWith("ord_mismatch")) throw new OrderlyError("RESERVATION_MISMATCH", "reserved with other lines");
    return reserved();
  });
  for (let i = 0; i < 150; i++) many.begin(`ord_mismatch_${String(i).padStart(3, "0")}`);
  many.begin("ord_last");
  expect(await many.recovery.sweep()).toBe(1);
  expect(many.store.get("ord_last")?.status).toBe(Status.CONFIRMED);
  many.db.close();

  // Failing fast with the inventory down, the first failure ends the sweep: the rest would fail the same way.
  let asked = 0;
  const down = setup(async () => {
    asked++;
    throw new OrderlyError("DEPENDENCY_UNAVAILABLE", "inventory is down");
  }, false);
  down.begin("ord_a");
  down.begin("ord_b");
  expect(await down.recovery.sweep()).toBe(0);
  expect(asked).toBe(1);
  down.db.close();
});
