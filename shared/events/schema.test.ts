import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { openDatabase } from "../sqlite/index.js";
import { outboxMigration, outboxProgressMigration, outboxTraceMigration, PUBLISHED_THROUGH_SQL, unpublishedRows } from "./schema.js";

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
