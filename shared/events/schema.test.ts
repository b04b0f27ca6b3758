import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { openDatabase } from "../sqlite/index.js";
import { deadLetterTimeMigration, inboxMigration, outboxBacklog, outboxMigration, outboxProgressMigration, outboxRetryDueMigration, outboxTraceMigration, PUBLISHED_THROUGH_SQL, unpublishedRows } from "./schema.js";

test.each([
  { rows: 5, published: [1, 2, 3], through: 3, unpublished: 2 },
  { rows: 5, published: [1, 2, 3, 4, 5], through: 5, unpublished: 0 },
  { rows: 5, published: [], through: 0, unpublished: 5 },
  { rows: 0, published: [], through: 0, unpublished: 0 },
  // Published out of order: from the first gap on, rows go again (JetStream drops row 4 as a duplicate).
  { rows: 5, published: [1, 2, 4], through: 2, unpublished: 3 },
])("an outbox written before outbox_batches keeps what it had published ($published of $rows rows)", ({ rows, published, through, unpublished }) => {
  using temp = tempDir("orderly-outbox-");
  const dir = temp.path;
  const file = join(dir, "service.db");
  const before = openDatabase({ file, migrations: [outboxMigration, outboxTraceMigration] });
  const append = before.prepare("INSERT INTO outbox (event_id, subject, payload, create_time, published_time) VALUES (?, 'orderly.orders.created', x'00', 1, ?)");
  for (let i = 1; i <= rows; i++) append.run(`e${i}`, published.includes(i) ? 2 : null);
  before.close();

  const after = openDatabase({ file, migrations: [outboxMigration, outboxTraceMigration, outboxProgressMigration] });
  expect([after.prepare(PUBLISHED_THROUGH_SQL).pluck().get(), unpublishedRows(after), after.prepare("SELECT count(*) FROM outbox").pluck().get()]).toEqual([through, unpublished, rows]);
  after.close();
});

test("dead letters recorded before stream_time are kept, with the time 0, and the next letter gets an id after every one the table gave", () => {
  using temp = tempDir("orderly-dead-letters-");
  const file = join(temp.path, "service.db");
  const before = openDatabase({ file, migrations: [inboxMigration] });
  const old = before.prepare("INSERT INTO dead_letters (consumer, stream, stream_seq, subject, event_id, deliveries, reason, payload, create_time) VALUES ('query-orders', 'ORDERS', ?, 'orderly.orders.created', NULL, 5, 'UndecodableEvent', x'00', 1)");
  for (const seq of [7, 8, 9]) old.run(seq);
  // Letters 2 and 3 deleted by an operator: their ids are not given again.
  before.prepare("DELETE FROM dead_letters WHERE id > 1").run();
  before.close();

  const after = openDatabase({ file, migrations: [inboxMigration, deadLetterTimeMigration] });
  const letter = "INSERT INTO dead_letters (consumer, stream, stream_seq, stream_time, subject, deliveries, reason, payload, create_time) VALUES ('query-orders', 'ORDERS', 7, ?, 's', 5, 'r', x'01', 2)";
  after.prepare(letter).run(1_000);
  // The same message (sequence and time) once only.
  expect(() => after.prepare(letter).run(1_000)).toThrow(/UNIQUE/);
  expect(after.prepare("SELECT id, stream_seq, stream_time, reason FROM dead_letters ORDER BY id").all()).toEqual([
    { id: 1, stream_seq: 7, stream_time: 0, reason: "UndecodableEvent" },
    { id: 4, stream_seq: 7, stream_time: 1_000, reason: "r" },
  ]);
  after.close();
});

test("the outbox backlog, read from the highest seq and the rows set aside, is the count of the rows unpublished, through rolled-back and failed inserts, batches, rows set aside and pruning", () => {
  using temp = tempDir("orderly-backlog-");
  const db = openDatabase({ file: join(temp.path, "service.db"), migrations: [outboxMigration, outboxTraceMigration, outboxProgressMigration, outboxRetryDueMigration] });
  const append = db.prepare("INSERT INTO outbox (event_id, subject, payload, create_time) VALUES (?, 's', x'00', ?)");
  const batch = db.prepare("INSERT INTO outbox_batches (through_seq, events, publish_time) VALUES (?, 0, 0)");
  const setAside = db.prepare("INSERT OR IGNORE INTO outbox_retry (seq, failures, last_error, next_attempt) VALUES (?, 1, 'refused', 0)");
  const maxSeq = () => db.prepare("SELECT coalesce(max(seq), 0) FROM outbox").pluck().get() as number;
  // What the backlog is, by reading every row.
  const counted = (after: number) => {
    const through = Math.max(after, db.prepare(PUBLISHED_THROUGH_SQL).pluck().get() as number);
    const rows = db
      .prepare("SELECT seq, create_time AS t FROM outbox WHERE seq > ? UNION SELECT seq, create_time FROM outbox_retry JOIN outbox USING (seq) WHERE seq > ? AND seq <= ? ORDER BY seq")
      .all(through, after, through) as { seq: number; t: number }[];
    return { n: rows.length, oldest: rows[0]?.t ?? null };
  };
  let time = 0;
  let id = 0;
  const check = () => {
    for (const after of [0, 1, 7, Math.floor(maxSeq() / 2), maxSeq(), maxSeq() + 5]) expect(outboxBacklog(db, after), `after ${after}`).toEqual(counted(after));
  };
  check();
  for (let round = 0; round < 20; round++) {
    // Written: some rows committed, a transaction rolled back, an insert refused inside a transaction that commits.
    db.transaction(() => {
      for (let i = 0; i < 5 + (round % 4); i++) append.run(`e${id++}`, time++);
      try {
        append.run(`e${id - 1}`, time++);
      } catch {
        // A duplicate event id: refused, the transaction goes on.
      }
    })();
    expect(() =>
      db.transaction(() => {
        append.run(`e${id++}`, time++);
        throw new Error("rolled back");
      })(),
    ).toThrow("rolled back");
    check();
    // Published: a batch through some of them, two of its rows set aside to retry, now and then a retried row done.
    const through = maxSeq() - (round % 3);
    batch.run(through);
    setAside.run(through - 1);
    setAside.run(through - 4);
    if (round % 2 === 1) db.prepare("DELETE FROM outbox_retry WHERE seq = (SELECT min(seq) FROM outbox_retry)").run();
    check();
    // Pruned: published rows not set aside, now and then every one (the highest seq then is the batch's).
    db.prepare("DELETE FROM outbox WHERE seq <= ? AND seq NOT IN (SELECT seq FROM outbox_retry)").run(round % 5 === 4 ? through : through - 3);
    check();
  }
  expect(outboxBacklog(db).n).toBeGreaterThan(0);
  db.close();
});
