import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { join } from "node:path";
import { expect, test } from "vitest";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderStatus } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { InvalidEvent } from "../../shared/events/index.js";
import { createLogger, silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { dumpReadModels } from "./read-store.js";
import { Projector } from "./projector.js";
import { queryMigrations } from "./schema.js";

const MS = Date.UTC(2026, 11, 5, 9);

/** An order event of `status`, with the snapshot of order `snapshotId` and the aggregate id and version given. */
function orderEvent(aggregateId: string, aggregateVersion: bigint, status: OrderStatus, snapshotId = aggregateId): Event {
  const order = { id: snapshotId, customerId: "vic", status, items: [{ sku: "V-1", quantity: 1, unitPriceMinor: 100n, lineTotalMinor: 100n }], totalMinor: 100n, currencyCode: "USD", version: aggregateVersion, createTime: timestampFromMs(MS), updateTime: timestampFromMs(MS) };
  const payload = status === OrderStatus.CANCELLED ? { case: "orderCancelled" as const, value: { order } } : { case: "orderConfirmed" as const, value: { order } };
  return create(EventSchema, { eventId: `evt-${aggregateId}-${aggregateVersion}-${status}`, aggregateId, aggregateVersion, payload });
}

/** A stock event of SKU `aggregateId` at `aggregateVersion`. */
function stockEvent(aggregateId: string, aggregateVersion: bigint): Event {
  const item = { sku: aggregateId, name: "V", available: 5, reserved: 0, version: aggregateVersion, updateTime: timestampFromMs(MS) };
  return create(EventSchema, { eventId: `evt-${aggregateId}-${aggregateVersion}`, aggregateId, aggregateVersion, payload: { case: "stockRestocked", value: { item, quantity: 5 } } });
}

test("an event whose version no row can hold, or whose snapshot is of another aggregate, is refused (InvalidEvent) and changes nothing; a later change still applies", () => {
  using temp = tempDir("orderly-projector-");
  const db = openDatabase({ file: join(temp.path, "query.db"), migrations: queryMigrations });
  using _db = { [Symbol.dispose]: () => db.close() };
  const projector = new Projector(db, silentLogger());
  projector.handle(orderEvent("ord_1", 2n, OrderStatus.CONFIRMED), "orderly.orders.confirmed");
  projector.handle(stockEvent("V-1", 1n), "orderly.inventory.restocked");
  const before = dumpReadModels(db);

  // A version past 2^53 - 1 would stand above every later change (and no reply could carry it); 0 and below are no version.
  for (const version of [2n ** 63n - 1n, 2n ** 53n, 0n, -1n]) {
    expect(() => projector.handle(orderEvent("ord_1", version, OrderStatus.CONFIRMED), "orderly.orders.confirmed")).toThrow(InvalidEvent);
    expect(() => projector.handle(stockEvent("V-1", version), "orderly.inventory.restocked")).toThrow(InvalidEvent);
  }
  // An event of one order carrying another's snapshot.
  expect(() => projector.handle(orderEvent("ord_1", 3n, OrderStatus.CANCELLED, "ord_2"), "orderly.orders.cancelled")).toThrow(/of "ord_1" but carries the snapshot of "ord_2"/);
  expect(dumpReadModels(db)).toEqual(before);

  // The order's real next change applies.
  projector.handle(orderEvent("ord_1", 3n, OrderStatus.CANCELLED), "orderly.orders.cancelled");
  expect(db.prepare("SELECT status, version FROM order_views WHERE id = 'ord_1'").get()).toEqual({ status: OrderStatus.CANCELLED, version: 3 });
});

test("an event of a second history of an aggregate (its service's database put back from an older copy alone) is ignored and said at error once; a late event of the same history is ignored in silence", () => {
  using temp = tempDir("orderly-projector-");
  const db = openDatabase({ file: join(temp.path, "query.db"), migrations: queryMigrations });
  using _db = { [Symbol.dispose]: () => db.close() };
  const lines: Record<string, unknown>[] = [];
  const projector = new Projector(db, createLogger("query", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
  const stockAt = (sku: string, version: bigint, ms: number, id = `evt-${sku}-${version}-${ms}`) => {
    const event = stockEvent(sku, version);
    event.eventId = id;
    if (event.payload.case === "stockRestocked") event.payload.value.item!.updateTime = timestampFromMs(ms);
    return event;
  };
  const orderAt = (version: bigint, status: OrderStatus, id: string) => Object.assign(orderEvent("ord_9", version, status), { eventId: id });

  // A late event of one history: an older version, and older than what is held.
  projector.handle(stockAt("S-1", 2n, MS + 2000), "orderly.inventory.restocked");
  projector.handle(stockAt("S-1", 1n, MS + 1000), "orderly.inventory.restocked");
  projector.handle(orderAt(2n, OrderStatus.CONFIRMED, "o-2"), "orderly.orders.confirmed");
  projector.handle(orderAt(1n, OrderStatus.PENDING, "o-1"), "orderly.orders.created");
  expect(lines.filter((line) => line.level === 50)).toEqual([]);
  const before = dumpReadModels(db);

  // A second history: a version held, given again later (stock) or with another status (order); twice, said once.
  for (const n of [1, 2]) {
    projector.handle(stockAt("S-1", 2n, MS + 5000 + n), "orderly.inventory.restocked");
    projector.handle(orderAt(2n, OrderStatus.CANCELLED, `o-2-again-${n}`), "orderly.orders.cancelled");
  }
  expect(dumpReadModels(db)).toEqual(before);
  const errors = lines.filter((line) => line.level === 50);
  expect(errors.map((line) => [line.kind, line.aggregateId])).toEqual([
    ["stock", "S-1"],
    ["order", "ord_9"],
  ]);
  expect(errors[0]!.msg).toMatch(/^two histories of one SKU's stock: this event gives it version 2 at .*, later than version 2 held .* was the inventory service's database put back from an older copy alone\? \(README: Backup and restore\)$/);
  expect(errors[1]!.msg).toMatch(/^two histories of one order: its version 2 is held with status CONFIRMED, and this event gives it CANCELLED\. /);
});
