import { fromBinary } from "@bufbuild/protobuf";
import { OrderSchema, type Order } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { boundLimit, type Db } from "../../shared/sqlite/index.js";
import { readModelTables } from "./schema.js";

/** A stock level row. */
export interface StockLevelRow {
  sku: string;
  name: string;
  available: number;
  reserved: number;
  version: number;
  update_time: number;
}

/** A daily sales row. */
export interface DailySalesRow {
  day: string;
  sku: string;
  currency_code: string;
  units: bigint;
  revenue_minor: bigint;
}

/** Reads of the read models (the query side never writes). */
export class ReadStore {
  private readonly statements;

  constructor(private readonly db: Db) {
    this.statements = {
      order: db.prepare<[string], { order_pb: Buffer; version: number }>("SELECT order_pb, version FROM order_views WHERE id = ?"),
      timeline: db.prepare<[string], { status: number; version: number; change_time: number }>(
        "SELECT status, version, change_time FROM order_timeline WHERE order_id = ? ORDER BY version",
      ),
      // The cursor as a row value, which SQLite bounds the index with: spelled out as an OR, it walked the index from the
      // customer's newest order to the cursor, so page n cost n pages of rows (100 s for every page of 200,000 orders).
      customerOrders: db.prepare<[string, number, string, number], { order_pb: Buffer; create_time: number; id: string }>(
        `SELECT order_pb, create_time, id FROM order_views WHERE customer_id = ? AND (create_time, id) < (?, ?)
         ORDER BY create_time DESC, id DESC LIMIT ${boundLimit()}`,
      ),
      stockLevel: db.prepare<[string], StockLevelRow>("SELECT * FROM stock_levels WHERE sku = ?"),
      stockLevels: db.prepare<[string, number], StockLevelRow>(`SELECT * FROM stock_levels WHERE sku > ? ORDER BY sku LIMIT ${boundLimit()}`),
      // One SKU's rows through daily_sales_by_sku, and the range starting at the cursor's day (see sales()): with
      // `(@sku = '' OR sku = @sku)` and a cursor spelled out as an OR SQLite had only the requested day range, so a page
      // read every row of every SKU from the range's start to the cursor (a deep page, or a rare SKU over a long range,
      // read the whole table).
      sales: db.prepare(
        `SELECT * FROM daily_sales WHERE day >= @start AND day <= @end AND (day, sku, currency_code) > (@afterDay, @afterSku, @afterCurrency)
         ORDER BY day, sku, currency_code LIMIT ${boundLimit("@limit")}`,
      ).safeIntegers(true), // a day's sums are int64 and may pass 2^53: read exactly, as BigInt
      salesOfSku: db.prepare(
        `SELECT * FROM daily_sales WHERE sku = @sku AND day >= @start AND day <= @end AND (day, sku, currency_code) > (@afterDay, @afterSku, @afterCurrency)
         ORDER BY day, sku, currency_code LIMIT ${boundLimit("@limit")}`,
      ).safeIntegers(true),
    };
  }

  /** An order view and its version, or undefined. */
  order(id: string): { order: Order; version: number } | undefined {
    const row = this.statements.order.get(id);
    return row && { order: fromBinary(OrderSchema, row.order_pb), version: row.version };
  }

  /** An order's status changes, oldest first. */
  timeline(id: string) {
    return this.statements.timeline.all(id);
  }

  /** A customer's orders older than the cursor, newest first. */
  customerOrders(customerId: string, before: { createTime: number; id: string } | undefined, limit: number) {
    const time = before?.createTime ?? Number.MAX_SAFE_INTEGER;
    return this.statements.customerOrders
      .all(customerId, time, before?.id ?? "", limit)
      .map((row) => ({ order: fromBinary(OrderSchema, row.order_pb), createTime: row.create_time, id: row.id }));
  }

  /** One SKU's stock level. */
  stockLevel(sku: string): StockLevelRow | undefined {
    return this.statements.stockLevel.get(sku);
  }

  /** Stock levels after a SKU, ordered by SKU. */
  stockLevels(afterSku: string, limit: number): StockLevelRow[] {
    return this.statements.stockLevels.all(afterSku, limit);
  }

  /** Daily sales rows in a day range (optionally one SKU), after a cursor. */
  sales(filter: { sku: string; start: string; end: string }, after: [string, string, string] | undefined, limit: number): DailySalesRow[] {
    const [afterDay, afterSku, afterCurrency] = after ?? ["", "", ""];
    const statement = filter.sku === "" ? this.statements.sales : this.statements.salesOfSku;
    // Every row after the cursor is of its day or later: the range starts there, so the index is read from the cursor on.
    const start = afterDay > filter.start ? afterDay : filter.start;
    return statement.all({ ...filter, start, afterDay, afterSku, afterCurrency, limit }) as DailySalesRow[];
  }

  /** Every read-model row, table by table in a fixed order (for comparing two builds). */
  dump(): Record<string, unknown[]> {
    return dumpReadModels(this.db);
  }
}

/** Every read-model row of a database, table by table in a fixed order (integers as BigInt, so sums past 2^53 compare exactly). */
export function dumpReadModels(db: Db): Record<string, unknown[]> {
  return Object.fromEntries(
    Object.entries(readModelTables).map(([table, order]) => [table, db.prepare(`SELECT * FROM ${table} ORDER BY ${order}`).safeIntegers(true).all()]),
  );
}
