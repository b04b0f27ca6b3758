import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration, outboxMigration, outboxProgressMigration, outboxRetryDueMigration, outboxTraceMigration } from "../../shared/events/index.js";
import type { Migration } from "../../shared/sqlite/index.js";

/** The order database schema, in order. */
export const orderMigrations: readonly Migration[] = [
  `
  -- items is JSON [{"sku","quantity","unitPriceMinor"}]; status holds
  -- orderly.order.v1.OrderStatus values.
  CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    status          INTEGER NOT NULL,
    items           TEXT NOT NULL,
    total_minor     INTEGER NOT NULL DEFAULT 0,
    currency_code   TEXT NOT NULL DEFAULT '',
    reject_reason   TEXT NOT NULL DEFAULT '',
    reject_metadata TEXT NOT NULL DEFAULT '{}',
    create_time     INTEGER NOT NULL,
    update_time     INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    -- 1 once OrderCreated was written to the outbox (orders are announced when decided)
    announced       INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE INDEX orders_by_customer ON orders (customer_id, create_time DESC, id DESC);
  CREATE INDEX orders_pending ON orders (update_time) WHERE status = 1;

  -- Idempotency keys, scoped per customer: the hash of the request they
  -- were first used with, the order they created, and (once decided) the
  -- order as first returned, which a replay returns again.
  CREATE TABLE idempotency_keys (
    customer_id  TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    response     TEXT,
    create_time  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, request_id)
  ) WITHOUT ROWID;
  CREATE INDEX idempotency_keys_by_order ON idempotency_keys (order_id);
  CREATE INDEX idempotency_keys_by_time ON idempotency_keys (create_time);
  `,
  outboxMigration,
  inboxMigration,
  outboxTraceMigration,
  outboxProgressMigration,
  outboxRetryDueMigration,
  `
  -- Versions before 2026-12-04 saved an order's 202 (PENDING) as its key's response, which a
  -- retry then replayed after the decision. Forgotten, a retry answers the order as it is.
  UPDATE idempotency_keys SET response = NULL WHERE json_extract(response, '$.status') = 1;
  `,
  deadLetterTimeMigration,
  deferredEventsMigration,
];
