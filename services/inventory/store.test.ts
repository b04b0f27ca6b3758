import { describe, expect, test } from "vitest";
import { Outbox } from "../../shared/events/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { inventoryMigrations } from "./schema.js";
import { InventoryStore, ReservationState } from "./store.js";

function store() {
  let now = 1_000;
  const db = openDatabase({ file: ":memory:", migrations: inventoryMigrations });
  return new InventoryStore(db, new Outbox(db), () => now++);
}

describe("InventoryStore", () => {
  test("reserves all lines or none", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5 });
    s.restock({ sku: "B", quantity: 1 });
    expect(() => s.reserve("o1", [{ sku: "A", quantity: 2 }, { sku: "B", quantity: 2 }])).toThrow(expect.objectContaining({ reason: "INSUFFICIENT_STOCK" }));
    expect(s.getItem("A")).toMatchObject({ available: 5, reserved: 0 });
    expect(s.getReservation("o1")).toBeUndefined();
  });

  test("an item's update time never goes back: a clock stepped back between its changes keeps the last time", () => {
    const times = [5_000, 4_000, 3_000, 6_000];
    const db = openDatabase({ file: ":memory:", migrations: inventoryMigrations });
    const s = new InventoryStore(db, new Outbox(db), () => times.shift() ?? 7_000);
    s.restock({ sku: "A", quantity: 5 });
    s.reserve("o1", [{ sku: "A", quantity: 1 }]);
    expect(s.getItem("A")).toMatchObject({ version: 2, updateTime: 5_000 });
    s.release("o1");
    expect(s.getItem("A")).toMatchObject({ version: 3, updateTime: 5_000 });
    s.restock({ sku: "A", quantity: 1 });
    expect(s.getItem("A")).toMatchObject({ version: 4, updateTime: 6_000 });
  });

  test("reserving twice for one order holds the stock once", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5, unitPriceMinor: 100 });
    const first = s.reserve("o1", [{ sku: "A", quantity: 2 }]);
    const second = s.reserve("o1", [{ sku: "A", quantity: 2 }]);
    expect(second).toEqual(first);
    expect(first.totalMinor).toBe(200);
    expect(s.getItem("A")).toMatchObject({ available: 3, reserved: 2 });
    expect(() => s.reserve("o1", [{ sku: "A", quantity: 3 }])).toThrow(expect.objectContaining({ reason: "RESERVATION_MISMATCH" }));
  });

  test("a release is idempotent, and a released order cannot be reserved again", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5 });
    s.reserve("o1", [{ sku: "A", quantity: 2 }]);
    expect(s.release("o1").state).toBe(ReservationState.RELEASED);
    expect(s.release("o1").state).toBe(ReservationState.RELEASED);
    expect(s.getItem("A")).toMatchObject({ available: 5, reserved: 0 });
    expect(() => s.reserve("o1", [{ sku: "A", quantity: 2 }])).toThrow(expect.objectContaining({ reason: "RESERVATION_RELEASED" }));
  });

  test("a reservation, and once released its release, answers the version it left its items at (what their events announce), again when asked again", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5 });
    s.restock({ sku: "B", quantity: 5 });
    s.restock({ sku: "B", quantity: 1 });
    const versions = (lines: readonly { sku: string; itemVersion?: number }[]) => lines.map((line) => [line.sku, line.itemVersion]);
    expect(versions(s.reserve("o1", [{ sku: "A", quantity: 1 }, { sku: "B", quantity: 1 }]).lines)).toEqual([["A", 2], ["B", 3]]);
    expect([s.getItem("A")!.version, s.getItem("B")!.version]).toEqual([2, 3]);
    expect(versions(s.reserve("o1", [{ sku: "A", quantity: 1 }, { sku: "B", quantity: 1 }]).lines)).toEqual([["A", 2], ["B", 3]]);
    expect(versions(s.release("o1").lines)).toEqual([["A", 3], ["B", 4]]);
    expect(versions(s.release("o1").lines)).toEqual([["A", 3], ["B", 4]]);
    expect(versions(s.getReservation("o1")!.lines)).toEqual([["A", 3], ["B", 4]]);
  });

  test("releasing an order never reserved leaves a tombstone that blocks a late reserve", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5 });
    expect(s.release("late").lines).toEqual([]);
    expect(() => s.reserve("late", [{ sku: "A", quantity: 1 }])).toThrow(expect.objectContaining({ reason: "RESERVATION_RELEASED" }));
    expect(s.getItem("A")).toMatchObject({ available: 5, reserved: 0 });
  });

  test("a restock with a request id is applied once", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5, requestId: "r1" });
    expect(s.restock({ sku: "A", quantity: 5, requestId: "r1" }).available).toBe(5);
    expect(() => s.restock({ sku: "A", quantity: 6, requestId: "r1" })).toThrow(expect.objectContaining({ reason: "IDEMPOTENCY_KEY_REUSED" }));
    // A retry that changes the name, the price or the currency is another request too: refused, not silently dropped.
    for (const change of [{ name: "Renamed" }, { unitPriceMinor: 100 }, { currencyCode: "EUR" }]) {
      expect(() => s.restock({ sku: "A", quantity: 5, requestId: "r1", ...change })).toThrow(expect.objectContaining({ reason: "IDEMPOTENCY_KEY_REUSED" }));
    }
    expect(s.getItem("A")).toMatchObject({ available: 5, name: "A", unitPriceMinor: 0, currencyCode: "USD" });
  });

  test("unknown SKUs and mixed currencies are refused", () => {
    const s = store();
    s.restock({ sku: "A", quantity: 5, currencyCode: "USD" });
    s.restock({ sku: "E", quantity: 5, currencyCode: "EUR" });
    expect(() => s.reserve("o1", [{ sku: "Z", quantity: 1 }])).toThrow(expect.objectContaining({ reason: "UNKNOWN_SKU" }));
    expect(() => s.reserve("o2", [{ sku: "A", quantity: 1 }, { sku: "E", quantity: 1 }])).toThrow(expect.objectContaining({ reason: "MIXED_CURRENCIES" }));
  });

  test("lists items by SKU after a cursor", () => {
    const s = store();
    for (const sku of ["C", "A", "B"]) s.restock({ sku, quantity: 1 });
    expect(s.listItems("", 2).map((i) => i.sku)).toEqual(["A", "B"]);
    expect(s.listItems("B", 2).map((i) => i.sku)).toEqual(["C"]);
  });
});
