import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration, outboxMigration, outboxProgressMigration, outboxRetryDueMigration, outboxTraceMigration } from "../../shared/events/index.js";
import type { Migration } from "../../shared/sqlite/index.js";

/** The inventory database schema, in order. Stock levels can never go negative (CHECK constraints). */
export const inventoryMigrations: readonly Migration[] = [
  `
  CREATE TABLE items (
    sku              TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    currency_code    TEXT NOT NULL,
    available        INTEGER NOT NULL CHECK (available >= 0),
    reserved         INTEGER NOT NULL CHECK (reserved >= 0),
    create_time      INTEGER NOT NULL,
    update_time      INTEGER NOT NULL,
    version          INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- One row per order ever reserved or released; lines are JSON
  -- [{"sku","quantity","unitPriceMinor"}]. A release of an unknown order leaves a
  -- RELEASED row with no lines, so a late reserve for it reserves nothing.
  CREATE TABLE reservations (
    order_id      TEXT PRIMARY KEY,
    state         INTEGER NOT NULL,
    lines         TEXT NOT NULL,
    total_minor   INTEGER NOT NULL,
    currency_code TEXT NOT NULL,
    create_time   INTEGER NOT NULL,
    update_time   INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- Restocks applied with a request id, so a retried restock is applied once.
  CREATE TABLE restocks (
    request_id  TEXT PRIMARY KEY,
    sku         TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    create_time INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  outboxMigration,
  inboxMigration,
  `
  -- 1 once the order holding the reservation was confirmed (from OrderConfirmed events);
  -- RESERVED rows still 0 after RESERVATION_TTL_MS are released.
  ALTER TABLE reservations ADD COLUMN order_confirmed INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX reservations_unconfirmed ON reservations (create_time) WHERE state = 1 AND order_confirmed = 0;
  `,
  outboxTraceMigration,
  outboxProgressMigration,
  outboxRetryDueMigration,
  `
  -- The whole restock a request id applied (its SKU, quantity, name, price and currency as sent, JSON), so a retry
  -- that changes any of them is refused; NULL for the restocks recorded before, which are compared by SKU and quantity.
  ALTER TABLE restocks ADD COLUMN request TEXT;
  `,
  deadLetterTimeMigration,
  deferredEventsMigration,
];
