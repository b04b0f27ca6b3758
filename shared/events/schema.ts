import type { Db, Migration } from "../sqlite/index.js";

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

/**
 * A dead letter is one message of a stream: its sequence and the time the
 * stream stored it (ms), as a stream made again (deleted, or lost with the
 * server's store) numbers its messages from 1 again. A message dead-lettered
 * twice (its term lost in a crash) is still recorded once.
 */
export const deadLetterTimeMigration: Migration = `
  CREATE TABLE dead_letters_by_time (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    stream_seq  INTEGER NOT NULL,
    stream_time INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    event_id    TEXT,
    deliveries  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    UNIQUE (consumer, stream, stream_seq, stream_time)
  );
  INSERT INTO dead_letters_by_time (id, consumer, stream, stream_seq, stream_time, subject, event_id, deliveries, reason, payload, create_time)
    SELECT id, consumer, stream, stream_seq, 0, subject, event_id, deliveries, reason, payload, create_time FROM dead_letters;
  -- Ids go on from the old table's (never one a deleted letter had).
  DELETE FROM sqlite_sequence WHERE name = 'dead_letters_by_time';
  INSERT INTO sqlite_sequence (name, seq) SELECT 'dead_letters_by_time', seq FROM sqlite_sequence WHERE name = 'dead_letters';
  DROP TABLE dead_letters;
  ALTER TABLE dead_letters_by_time RENAME TO dead_letters;
`;

/**
 * Events of a payload type the consumer's code does not know (a newer
 * producer's), kept with what their message carried until a consumer that
 * knows the type applies them at its start (EventConsumer.applyDeferred).
 * Acked once kept, so however many there are, none holds the events behind
 * it back (JetStream delivers at most max_ack_pending unacked).
 */
export const deferredEventsMigration: Migration = `
  CREATE TABLE deferred_events (
    consumer    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    stream_seq  INTEGER NOT NULL,
    stream_time INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    payload     BLOB NOT NULL,
    traceparent TEXT,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
  ) WITHOUT ROWID;
  -- Read back in the order the stream stored them; counted without reading the payloads.
  CREATE INDEX deferred_events_in_stream_order ON deferred_events (consumer, stream_time, stream_seq);
`;

/** The outbox row keeps the trace context of the change, so the relay's publish joins the trace that caused it. */
export const outboxTraceMigration: Migration = `
  ALTER TABLE outbox ADD COLUMN traceparent TEXT;
`;

/**
 * The relay records how far it has published — one row per batch (the
 * highest seq it covers, how many rows, when) — instead of marking every
 * row: marking rewrote each row with its payload and moved it between two
 * indexes, which cost the relay more than publishing did. Rows after the
 * latest through_seq are unpublished, and so are the rows set aside in
 * outbox_retry (refused while the rest of their batch was published; retried
 * with a growing delay). Published rows are pruned by age.
 */
export const outboxProgressMigration: Migration = `
  CREATE TABLE outbox_batches (
    through_seq  INTEGER PRIMARY KEY,
    events       INTEGER NOT NULL,
    publish_time INTEGER NOT NULL
  );
  CREATE TABLE outbox_retry (
    seq          INTEGER PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    next_attempt INTEGER NOT NULL
  );
  INSERT INTO outbox_batches (through_seq, events, publish_time)
    SELECT through, 0, at FROM (
      SELECT coalesce((SELECT min(seq) - 1 FROM outbox WHERE published_time IS NULL), max(seq)) AS through, coalesce(max(published_time), 0) AS at FROM outbox
    ) WHERE through IS NOT NULL;
  DROP INDEX outbox_unpublished;
  DROP INDEX outbox_published;
  ALTER TABLE outbox DROP COLUMN published_time;
`;

/** The relay looks up the rows set aside that are due again before every batch: by time, not by reading them all. */
export const outboxRetryDueMigration: Migration = `
  CREATE INDEX outbox_retry_due ON outbox_retry (next_attempt);
`;

/** The SQL giving the highest outbox seq published (0 before the first batch). */
export const PUBLISHED_THROUGH_SQL = "SELECT coalesce(max(through_seq), 0) FROM outbox_batches";

/**
 * The outbox rows not yet published — after the relay's last batch, or set
 * aside to retry — (only those after `afterSeq`, when given): how many, and
 * when the first of them (in seq order) was written.
 *
 * Read in a few index lookups, however long the backlog: counting the rows
 * read every one of them, payload and all (a million events waiting while
 * NATS was down: 250 ms of the service's event loop for each metrics scrape
 * or status report). Seqs after the last batch are contiguous — AUTOINCREMENT
 * gives each committed row the next one (a rolled-back insert takes its seq
 * back), and only rows the relay got past are ever pruned — so their count is
 * the highest seq less the batch's; the rows set aside are few, and counted.
 * (An outbox migrated from before outbox_batches may have gaps after its
 * first unpublished row, where rows published meanwhile were pruned by age:
 * they are counted until the relay gets past them.)
 */
export function outboxBacklog(db: Db, afterSeq = 0): { n: number; oldest: number | null } {
  return db
    .prepare<{ after: number }, { n: number; oldest: number | null }>(
      `WITH bound (through) AS (SELECT max(@after, (${PUBLISHED_THROUGH_SQL}))),
         set_aside (seq) AS (SELECT seq FROM outbox_retry, bound WHERE seq > @after AND seq <= through)
       SELECT
         max(0, coalesce((SELECT max(seq) FROM outbox), 0) - through) + (SELECT count(*) FROM set_aside) AS n,
         (SELECT create_time FROM outbox WHERE seq = (SELECT min(seq) FROM (
            SELECT min(seq) AS seq FROM set_aside UNION ALL SELECT min(seq) FROM outbox WHERE seq > through))) AS oldest
       FROM bound`,
    )
    .get({ after: afterSeq })!;
}

/** How many outbox rows are not yet published (after `afterSeq`, when given). */
export function unpublishedRows(db: Db, afterSeq = 0): number {
  return outboxBacklog(db, afterSeq).n;
}
