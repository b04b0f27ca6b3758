import { join } from "node:path";
import { expect, test } from "vitest";
import { openDatabase } from "../../shared/sqlite/index.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { orderMigrations } from "./schema.js";
import { Status } from "./store.js";

test("upgrading forgets a 202 (PENDING) saved as an idempotency key's response by earlier versions, and keeps decisions", () => {
  using temp = tempDir("orderly-order-schema-");
  const file = join(temp.path, "order.db");
  // A database as the version before this migration left it.
  const forgetting = orderMigrations.findIndex((migration) => migration.includes("UPDATE idempotency_keys SET response = NULL"));
  const before = openDatabase({ file, migrations: orderMigrations.slice(0, forgetting) });
  const key = before.prepare("INSERT INTO idempotency_keys (customer_id, request_id, request_hash, order_id, response, create_time) VALUES ('dora', ?, 'h', ?, ?, 0)");
  key.run("pending", "ord_1", JSON.stringify({ id: "ord_1", status: Status.PENDING, version: 1 }));
  key.run("confirmed", "ord_2", JSON.stringify({ id: "ord_2", status: Status.CONFIRMED, version: 2 }));
  key.run("unsaved", "ord_3", null);
  before.close();

  const after = openDatabase({ file, migrations: orderMigrations });
  try {
    const saved = after.prepare("SELECT request_id AS key, json_extract(response, '$.status') AS status FROM idempotency_keys ORDER BY request_id").all();
    expect(saved).toEqual([
      { key: "confirmed", status: Status.CONFIRMED },
      { key: "pending", status: null },
      { key: "unsaved", status: null },
    ]);
  } finally {
    after.close();
  }
});
