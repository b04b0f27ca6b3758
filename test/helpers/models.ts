import Database from "better-sqlite3";
import { join } from "node:path";
import { connect } from "nats";
import { unpublishedRows } from "../../shared/events/index.js";

/** Opens one of a system's SQLite files read-only (WAL readers do not block the service). */
export function openReadOnly(dataDir: string, file: "order.db" | "inventory.db" | "query.db") {
  return new Database(join(dataDir, file), { readonly: true, fileMustExist: true });
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** What the write models say, and what the read models say, in comparable form. */
export function snapshotModels(dataDir: string) {
  const orderDb = openReadOnly(dataDir, "order.db");
  const inventoryDb = openReadOnly(dataDir, "inventory.db");
  const queryDb = openReadOnly(dataDir, "query.db");
  try {
    const orders = orderDb
      .prepare("SELECT id, customer_id AS customerId, status, version, items, update_time AS updateTime FROM orders WHERE announced = 1 ORDER BY id")
      .all() as { id: string; customerId: string; status: number; version: number; items: string; updateTime: number }[];
    const sales = new Map<string, { units: number; revenue: number }>();
    for (const order of orders) {
      if (order.status !== 2) continue;
      for (const item of JSON.parse(order.items) as { sku: string; quantity: number; unitPriceMinor: number }[]) {
        const key = `${utcDay(order.updateTime)}|${item.sku}`;
        const row = sales.get(key) ?? { units: 0, revenue: 0 };
        row.units += item.quantity;
        row.revenue += item.quantity * item.unitPriceMinor;
        sales.set(key, row);
      }
    }
    return {
      write: {
        orders: orders.map(({ id, customerId, status, version }) => ({ id, customerId, status, version })),
        stock: inventoryDb.prepare("SELECT sku, available, reserved, version FROM items ORDER BY sku").all(),
        sales: [...sales.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, v]) => ({ key, ...v })),
      },
      read: {
        orders: queryDb.prepare("SELECT id, customer_id AS customerId, status, version FROM order_views ORDER BY id").all(),
        stock: queryDb.prepare("SELECT sku, available, reserved, version FROM stock_levels ORDER BY sku").all(),
        sales: (queryDb.prepare("SELECT day, sku, units, revenue_minor AS revenue FROM daily_sales ORDER BY day, sku").all() as { day: string; sku: string; units: number; revenue: number }[]).map(
          ({ day, sku, units, revenue }) => ({ key: `${day}|${sku}`, units, revenue }),
        ),
      },
      counts: {
        processed: (queryDb.prepare("SELECT count(*) AS n FROM processed_events").get() as { n: number }).n,
        timeline: (queryDb.prepare("SELECT count(*) AS n FROM order_timeline").get() as { n: number }).n,
        deadLetters: (queryDb.prepare("SELECT count(*) AS n FROM dead_letters").get() as { n: number }).n,
        unpublished: unpublishedRows(orderDb) + unpublishedRows(inventoryDb),
      },
    };
  } finally {
    orderDb.close();
    inventoryDb.close();
    queryDb.close();
  }
}

/** Messages in each of Orderly's streams. */
export async function streamCounts(nats: { connectOptions: { servers: string; user?: string; pass?: string } }): Promise<{ ORDERS: number; INVENTORY: number }> {
  const nc = await connect(nats.connectOptions);
  try {
    const jsm = await nc.jetstreamManager();
    return {
      ORDERS: (await jsm.streams.info("ORDERS")).state.messages,
      INVENTORY: (await jsm.streams.info("INVENTORY")).state.messages,
    };
  } finally {
    await nc.close();
  }
}
