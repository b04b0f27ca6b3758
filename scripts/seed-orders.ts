/**
 * Seeds many CONFIRMED orders straight into SQLite, for benchmarks of how
 * costs grow with data: the write side (`order.db`: `orders`) and the read
 * side (`query.db`: `order_views`, `order_timeline`, `daily_sales`) exactly
 * as the order service and the projector would have left them, in large
 * transactions. No events are written (as if they had been published and
 * pruned long ago), and inventory is not touched: seeded orders buy SKUs
 * (`SEED-SKU-n`) that exist only in them.
 *
 * Stop the order and query services first: it refuses to start while they
 * hold their databases (the databases are created with the services' own
 * migrations when missing). Orders are deterministic
 * (scripts/bench/seed-data.ts), so a benchmark can address any of them, and
 * seeding the same number twice changes nothing.
 *
 *   node --import tsx scripts/seed-orders.ts --orders 1000000 [--data-dir ./.data] [--batch 20000]
 *
 * Prints one JSON line: {"orders", "inserted", "customers", "ms"}.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { OrderSchema, OrderStatus } from "../proto/gen/orderly/order/v1/order_pb.js";
import { orderMigrations } from "../services/order/schema.js";
import { utcDay } from "../services/query/projector.js";
import { queryMigrations } from "../services/query/schema.js";
import { claimSoleWriter, openDatabase, type Db } from "../shared/sqlite/index.js";
import { seedCustomerCount, seedOrder, type SeedOrder } from "./bench/seed-data.js";

/** What to seed. */
export interface SeedOptions {
  /** Directory holding order.db and query.db (ORDERLY_DATA_DIR). */
  dataDir: string;
  /** Seeded orders 0 … orders − 1. */
  orders: number;
  /** Orders per transaction. */
  batch: number;
}

/** What seeding did. */
export interface SeedSummary {
  orders: number;
  inserted: number;
  customers: number;
  ms: number;
}

function openForSeeding(file: string, migrations: Parameters<typeof openDatabase>[0]["migrations"]): Db {
  const db = openDatabase({ file, migrations });
  // Bulk load: a crash mid-seed only loses the seed, so skip fsyncs; a big page cache keeps index inserts in memory.
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144");
  return db;
}

/** Seeds orders into both databases; returns what it did. */
export function seedOrders(options: SeedOptions): SeedSummary {
  const started = performance.now();
  const total = options.orders;
  const writers = [claimSoleWriter(join(options.dataDir, "order.db"), "order")];
  let orderDb: Db | undefined;
  let queryDb: Db | undefined;
  try {
    writers.push(claimSoleWriter(join(options.dataDir, "query.db"), "query"));
    orderDb = openForSeeding(join(options.dataDir, "order.db"), orderMigrations);
    queryDb = openForSeeding(join(options.dataDir, "query.db"), queryMigrations);
    const insertOrder = orderDb.prepare(
      `INSERT OR IGNORE INTO orders (id, customer_id, status, items, total_minor, currency_code, reject_reason, reject_metadata,
         create_time, update_time, version, announced)
       VALUES (?, ?, ${OrderStatus.CONFIRMED}, ?, ?, 'USD', '', '{}', ?, ?, 2, 1)`,
    );
    const insertView = queryDb.prepare(
      `INSERT OR IGNORE INTO order_views (id, customer_id, status, version, create_time, update_time, confirmed_day, order_pb)
       VALUES (?, ?, ${OrderStatus.CONFIRMED}, 2, ?, ?, ?, ?)`,
    );
    const insertTimeline = queryDb.prepare(
      "INSERT OR IGNORE INTO order_timeline (order_id, version, status, change_time) VALUES (?, ?, ?, ?)",
    );
    const addSales = queryDb.prepare(
      `INSERT INTO daily_sales (day, sku, currency_code, units, revenue_minor) VALUES (?, ?, 'USD', ?, ?)
       ON CONFLICT (day, sku, currency_code) DO UPDATE SET units = units + excluded.units, revenue_minor = revenue_minor + excluded.revenue_minor`,
    );
    let inserted = 0;
    const writeOrders = orderDb.transaction((orders: SeedOrder[]) => {
      for (const o of orders) {
        insertOrder.run(o.id, o.customerId, JSON.stringify(o.lines), o.totalMinor, o.createTime, o.updateTime);
      }
    });
    const writeViews = queryDb.transaction((orders: SeedOrder[]) => {
      const sales = new Map<string, { day: string; sku: string; units: number; revenue: number }>();
      for (const o of orders) {
        const day = utcDay(o.updateTime);
        const message = create(OrderSchema, {
          id: o.id,
          customerId: o.customerId,
          items: o.lines.map((line) => ({
            sku: line.sku,
            quantity: line.quantity,
            unitPriceMinor: BigInt(line.unitPriceMinor),
            lineTotalMinor: BigInt(line.unitPriceMinor * line.quantity),
          })),
          status: OrderStatus.CONFIRMED,
          totalMinor: BigInt(o.totalMinor),
          currencyCode: "USD",
          createTime: timestampFromMs(o.createTime),
          updateTime: timestampFromMs(o.updateTime),
          version: 2n,
        });
        if (insertView.run(o.id, o.customerId, o.createTime, o.updateTime, day, toBinary(OrderSchema, message)).changes === 0) continue;
        inserted++;
        insertTimeline.run(o.id, 1, OrderStatus.PENDING, o.createTime);
        insertTimeline.run(o.id, 2, OrderStatus.CONFIRMED, o.updateTime);
        for (const line of o.lines) {
          const key = `${day}|${line.sku}`;
          const entry = sales.get(key) ?? { day, sku: line.sku, units: 0, revenue: 0 };
          entry.units += line.quantity;
          entry.revenue += line.quantity * line.unitPriceMinor;
          sales.set(key, entry);
        }
      }
      for (const s of sales.values()) addSales.run(s.day, s.sku, s.units, s.revenue);
    });
    for (let start = 0; start < total; start += options.batch) {
      const end = Math.min(total, start + options.batch);
      const orders: SeedOrder[] = [];
      for (let i = start; i < end; i++) orders.push(seedOrder(i, total));
      writeOrders.immediate(orders);
      writeViews.immediate(orders);
    }
    for (const db of [orderDb, queryDb]) {
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.pragma("optimize");
    }
    return { orders: options.orders, inserted, customers: seedCustomerCount(total), ms: Math.round(performance.now() - started) };
  } finally {
    orderDb?.close();
    queryDb?.close();
    for (const writer of writers) writer.release();
  }
}

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      "data-dir": { type: "string", default: process.env.ORDERLY_DATA_DIR || "./.data" },
      orders: { type: "string" },
      batch: { type: "string", default: "20000" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const usage = "usage: node --import tsx scripts/seed-orders.ts --orders N [--data-dir DIR] [--batch B]";
  if (values.help) {
    console.log(usage);
    return;
  }
  const int = (name: string, raw: string | undefined, min: number): number => {
    const value = Number(raw);
    if (raw === undefined || !Number.isSafeInteger(value) || value < min) throw new Error(`--${name} must be an integer >= ${min}\n${usage}`);
    return value;
  };
  const summary = seedOrders({
    dataDir: resolve(values["data-dir"]),
    orders: int("orders", values.orders, 1),
    batch: int("batch", values.batch, 1),
  });
  console.log(JSON.stringify(summary));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
