import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { openDatabase } from "../sqlite/index.js";
import { deadLetterTimeMigration, inboxMigration, outboxMigration, outboxProgressMigration, outboxTraceMigration, PUBLISHED_THROUGH_SQL, unpublishedRows } from "./schema.js";

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
