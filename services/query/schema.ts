import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration } from "../../shared/events/index.js";
import type { Migration } from "../../shared/sqlite/index.js";

/** The read models, built only from events. */
export const queryMigrations: readonly Migration[] = [
  `
  -- The order view: the latest snapshot of each order (binary orderly.order.v1.Order),
  -- with the columns queries filter and sort on. Indexed by customer: orders by customer.
  CREATE TABLE order_views (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    status        INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    create_time   INTEGER NOT NULL,
    update_time   INTEGER NOT NULL,
    confirmed_day TEXT,
    order_pb      BLOB NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX order_views_by_customer ON order_views (customer_id, create_time DESC, id DESC);

  -- Every status an order went through.
  CREATE TABLE order_timeline (
    order_id    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    change_time INTEGER NOT NULL,
    PRIMARY KEY (order_id, version)
  ) WITHOUT ROWID;

  -- Stock per SKU, from inventory events.
  CREATE TABLE stock_levels (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    available   INTEGER NOT NULL,
    reserved    INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    update_time INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- Units and revenue per SKU per UTC day of confirmation, of orders that are confirmed now.
  CREATE TABLE daily_sales (
    day           TEXT NOT NULL,
    sku           TEXT NOT NULL,
    currency_code TEXT NOT NULL,
    units         INTEGER NOT NULL,
    revenue_minor INTEGER NOT NULL,
    PRIMARY KEY (day, sku, currency_code)
  ) WITHOUT ROWID;
  CREATE INDEX daily_sales_by_sku ON daily_sales (sku, day);
  `,
  inboxMigration,
  `
  -- A day's revenue stays an exact int64: SQLite would turn a sum past its range into a float
  -- silently (which no reply can carry); the projector leaves such an order out of the sales instead.
  CREATE TRIGGER daily_sales_exact_insert BEFORE INSERT ON daily_sales WHEN typeof(NEW.revenue_minor) <> 'integer'
  BEGIN SELECT RAISE(ABORT, 'daily_sales.revenue_minor out of the int64 range'); END;
  CREATE TRIGGER daily_sales_exact_update BEFORE UPDATE ON daily_sales WHEN typeof(NEW.revenue_minor) <> 'integer'
  BEGIN SELECT RAISE(ABORT, 'daily_sales.revenue_minor out of the int64 range'); END;
  `,
  deadLetterTimeMigration,
  deferredEventsMigration,
];

/** The read-model tables and the order of their rows, for dumps and comparisons. */
export const readModelTables = {
  order_views: "id",
  order_timeline: "order_id, version",
  stock_levels: "sku",
  daily_sales: "day, sku, currency_code",
} as const;
