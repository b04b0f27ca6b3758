import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { EventSchema } from "../../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderStatus } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { ListDailySalesRequestSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import type { OrderlyError } from "../../../shared/errors/index.js";
import { createLogger, silentLogger } from "../../../shared/logging/index.js";
import { openDatabase, type Db } from "../../../shared/sqlite/index.js";
import { listDailySales } from "./list-daily-sales.js";
import { Projector } from "../projector.js";
import { ReadStore } from "../read-store.js";
import { queryMigrations } from "../schema.js";
import { tempDir, type TempDir } from "../../../test/helpers/temp-dir.js";

const opened: { db: Db; dir: TempDir }[] = [];
afterEach(() => {
  for (const { db, dir } of opened.splice(0)) {
    db.close();
    dir[Symbol.dispose]();
  }
});

/** A read model in a database file of its own, closed and removed after the test. */
function newReadModel(): Db {
  const dir = tempDir("orderly-read-store-");
  const db = openDatabase({ file: join(dir.path, "query.db"), migrations: queryMigrations });
  opened.push({ db, dir });
  return db;
}

function readModel(): { db: Db; projector: Projector; store: ReadStore } {
  const db = newReadModel();
  return { db, projector: new Projector(db, silentLogger()), store: new ReadStore(db) };
}

/** OrderConfirmed for a one-line order of `lineTotalMinor`, confirmed at `ms`. */
function confirmed(id: string, lineTotalMinor: bigint, ms: number) {
  const order = {
    id,
    customerId: "carol",
    status: OrderStatus.CONFIRMED,
    items: [{ sku: "BIG-1", quantity: 1, unitPriceMinor: lineTotalMinor, lineTotalMinor }],
    totalMinor: lineTotalMinor,
    currencyCode: "USD",
    version: 2n,
    createTime: timestampFromMs(ms),
    updateTime: timestampFromMs(ms),
  };
  return create(EventSchema, { eventId: `evt-${id}`, aggregateId: id, aggregateVersion: 2n, payload: { case: "orderConfirmed", value: { order } } });
}

/** The OrderCancelled that follows a confirmation event (version 3, same lines). */
function cancelled(confirmation: ReturnType<typeof confirmed>) {
  const order = { ...(confirmation.payload.value as { order: object }).order, status: OrderStatus.CANCELLED };
  return create(EventSchema, { eventId: `${confirmation.eventId}-cancelled`, aggregateId: confirmation.aggregateId, aggregateVersion: 3n, payload: { case: "orderCancelled", value: { order } } });
}

test("a day's revenue above 2^53 minor units is summed and answered exactly (int64, not a JS number)", () => {
  const { projector, store } = readModel();
  const ms = Date.UTC(2026, 11, 4, 12);
  // Each order's total is exact as a JS number; their sum, 2^53 + 3, is not (it would read as 2^53 + 4).
  projector.handle(confirmed("ord_big_1", 2n ** 52n + 1n, ms), "orderly.orders.confirmed");
  projector.handle(confirmed("ord_big_2", 2n ** 52n + 2n, ms), "orderly.orders.confirmed");
  const { sales } = listDailySales(store)(create(ListDailySalesRequestSchema, { sku: "BIG-1", startDay: "2026-12-04", endDay: "2026-12-04" }));
  expect(sales?.map((row) => ({ day: row.day, units: row.units, revenueMinor: row.revenueMinor }))).toEqual([
    { day: "2026-12-04", units: 2n, revenueMinor: 2n ** 53n + 3n },
  ]);
});

test("ListDailySales refuses days that are not in the calendar and ranges that end before they start; a leap day and a one-day range are fine", () => {
  const { store } = readModel();
  const list = (startDay: string, endDay: string) => {
    try {
      listDailySales(store)(create(ListDailySalesRequestSchema, { startDay, endDay }));
      return "ok";
    } catch (error) {
      const err = error as OrderlyError;
      return `${err.reason} ${err.violations.map((v) => v.field).join(",")}`;
    }
  };
  expect(list("2026-02-30", "")).toBe("VALIDATION_FAILED start_day");
  expect(list("", "2026-13-01")).toBe("VALIDATION_FAILED end_day");
  expect(list("2026-00-10", "2026-04-31")).toBe("VALIDATION_FAILED start_day,end_day");
  expect(list("2026-12-04", "2026-12-03")).toBe("VALIDATION_FAILED end_day");
  expect(list("2028-02-29", "2028-02-29")).toBe("ok");
  expect(list("", "")).toBe("ok");
});

test("an order that would take a day's revenue past int64 is left out of the sales (said in the log), while its view is updated and the report stays exact", () => {
  const db = newReadModel();
  const lines: { msg: string; orderId?: string }[] = [];
  const projector = new Projector(db, createLogger("query", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string; orderId?: string }) }));
  const store = new ReadStore(db);
  const ms = Date.UTC(2026, 11, 5, 12);
  const max = 2n ** 63n - 1n;
  const report = () =>
    listDailySales(store)(create(ListDailySalesRequestSchema, { sku: "BIG-1", startDay: "2026-12-05", endDay: "2026-12-05" })).sales?.map((row) => [row.units, row.revenueMinor]);
  projector.handle(confirmed("ord_huge_1", max - 10n, ms), "orderly.orders.confirmed");
  projector.handle(confirmed("ord_huge_2", 11n, ms), "orderly.orders.confirmed");
  expect(report()).toEqual([[1n, max - 10n]]);
  expect(lines.filter((l) => l.orderId === "ord_huge_2").map((l) => l.msg)).toEqual([
    "a confirmed order is left out of the daily sales: it would take a day's revenue past the int64 range",
  ]);
  expect(store.order("ord_huge_2")?.order.status).toBe(OrderStatus.CONFIRMED);
  // Cancelled, the order left out takes nothing away; one counted takes itself out, and a later one fits again.
  projector.handle(cancelled(confirmed("ord_huge_2", 11n, ms)), "orderly.orders.cancelled");
  expect(report()).toEqual([[1n, max - 10n]]);
  projector.handle(cancelled(confirmed("ord_huge_1", max - 10n, ms)), "orderly.orders.cancelled");
  expect(report()).toEqual([]);
  projector.handle(confirmed("ord_huge_3", 11n, ms), "orderly.orders.confirmed");
  expect(report()).toEqual([[1n, 11n]]);
});
