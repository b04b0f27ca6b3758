import { expect, test } from "vitest";
import { OrderlyError } from "../../shared/errors/index.js";
import { Outbox } from "../../shared/events/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { OrderStatus, type OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import type { CallOptions, Client } from "../../shared/grpc/index.js";
import { ReservationExpiry, orderFates, type OrderFate } from "./reservation-expiry.js";
import { inventoryMigrations } from "./schema.js";
import { InventoryStore, ReservationState } from "./store.js";

/** A store (real SQLite, in memory) holding `orders` reservations made one ms apart, and an expiry asking `fateOf` (its timer never fires here). */
function setup(orders: string[], fateOf: (orderId: string) => Promise<OrderFate>) {
  let now = 1_000;
  const db = openDatabase({ file: ":memory:", migrations: inventoryMigrations });
  const store = new InventoryStore(db, new Outbox(db), () => now++);
  store.restock({ sku: "A", quantity: 10_000 });
  for (const id of orders) store.reserve(id, [{ sku: "A", quantity: 1 }]);
  const expiry = new ReservationExpiry(store, fateOf, silentLogger(), 10, 3_600_000);
  return { store, expiry, close: async () => (await expiry.close(), db.close()) };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}_${String(i).padStart(3, "0")}`);

test("each expired reservation goes the way the order service says: confirmed kept and marked, pending kept, ended released", async () => {
  const fates: Record<string, OrderFate> = { ord_c: "confirmed", ord_p: "pending", ord_e: "ended" };
  const { store, expiry, close } = setup(Object.keys(fates), async (id) => fates[id]!);
  expect(await expiry.sweep(1_000_000)).toEqual({ released: 1, confirmed: 1, kept: 1 });
  expect(store.getReservation("ord_c")?.state).toBe(ReservationState.RESERVED);
  expect(store.getReservation("ord_p")?.state).toBe(ReservationState.RESERVED);
  expect(store.getReservation("ord_e")?.state).toBe(ReservationState.RELEASED);
  // The confirmed one is no longer a candidate; the pending one still is.
  expect(store.unconfirmedSince(1_000_000, 10).map((r) => r.orderId)).toEqual(["ord_p"]);
  await close();
});

test("more than a page of orders the order service cannot answer for, or that are pending, do not hide the ones after them; the order service down ends the sweep", async () => {
  const { store, expiry, close } = setup([...ids("ord_bad", 120), ...ids("ord_pending", 120), "ord_gone"], async (id) => {
    if (id.startsWith("ord_bad")) throw new OrderlyError("INTERNAL", "a row it cannot read");
    return id === "ord_gone" ? "ended" : "pending";
  });
  expect(await expiry.sweep(1_000_000)).toEqual({ released: 1, confirmed: 0, kept: 240 });
  expect(store.getReservation("ord_gone")?.state).toBe(ReservationState.RELEASED);
  await close();

  let asked = 0;
  const down = setup(ids("ord", 5), async () => {
    asked++;
    throw new OrderlyError("DEPENDENCY_UNAVAILABLE", "the order service is down");
  });
  expect(await down.expiry.sweep(1_000_000)).toEqual({ released: 0, confirmed: 0, kept: 0 });
  expect(asked).toBe(1);
  expect(down.store.unconfirmedSince(1_000_000, 10)).toHaveLength(5);
  await down.close();
});

test("an order's fate asked within a call is asked by that call's deadline (never past its own 2 s), with its cancel and request id", async () => {
  const asked: CallOptions[] = [];
  const orders = { getOrder: async (_request: unknown, options: CallOptions) => (asked.push(options), { order: { status: OrderStatus.CONFIRMED } }) };
  const fateOf = orderFates(orders as unknown as Client<typeof OrderService>, 2000);
  const { signal } = new AbortController();
  const soon = Date.now() + 300;
  expect(await fateOf("ord_1", { deadline: soon, signal, requestId: "req-1" })).toBe("confirmed");
  expect(asked[0]).toMatchObject({ deadline: soon, signal, requestId: "req-1" });
  // A caller with a longer deadline: the question's own bound.
  const before = Date.now();
  await fateOf("ord_2", { deadline: before + 60_000 });
  expect(asked[1]!.deadline).toBeLessThanOrEqual(Date.now() + 2000);
  expect(asked[1]!.deadline).toBeGreaterThanOrEqual(before + 2000);
  // The expiry's sweep asks on its own.
  await fateOf("ord_3");
  expect(asked[2]).toMatchObject({ requestId: "expiry:ord_3" });
});
