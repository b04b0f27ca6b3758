import type { Migration } from "../sqlite/index.js";

/** The outbox table: events written in the same transaction as the change they describe. */
export const outboxMigration: Migration = `
  CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    subject        TEXT NOT NULL,
    payload        BLOB NOT NULL,
    create_time    INTEGER NOT NULL,
    published_time INTEGER
  );
  CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_time IS NULL;
  CREATE INDEX outbox_published ON outbox (published_time) WHERE published_time IS NOT NULL;
`;

/** The inbox of a consumer (events applied, recorded with their effect) and its dead letters. */
export const inboxMigration: Migration = `
  CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    applied_time INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
  ) WITHOUT ROWID;
  CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    stream_seq  INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    event_id    TEXT,
    deliveries  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    UNIQUE (consumer, stream, stream_seq)
  );
`;

/** The outbox row keeps the trace context of the change, so the relay's publish joins the trace that caused it. */
export const outboxTraceMigration: Migration = `
  ALTER TABLE outbox ADD COLUMN traceparent TEXT;
`;
