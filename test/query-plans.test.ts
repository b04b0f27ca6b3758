import { expect, test } from "vitest";
import { InventoryStore } from "../services/inventory/store.js";
import { inventoryMigrations } from "../services/inventory/schema.js";
import { OrderStore } from "../services/order/store.js";
import { orderMigrations } from "../services/order/schema.js";
import { Projector } from "../services/query/projector.js";
import { ReadStore } from "../services/query/read-store.js";
import { queryMigrations } from "../services/query/schema.js";
import { EventConsumer, Outbox, OutboxRelay, connectNats } from "../shared/events/index.js";
import { silentLogger } from "../shared/logging/index.js";
import { openDatabase, type Db, type Migration } from "../shared/sqlite/index.js";
import { startNats } from "./helpers/nats.js";

/** Every statement `build` prepares on a fresh database of `migrations`. */
function preparedBy(migrations: readonly Migration[], build: (db: Db) => void): { db: Db; statements: string[] } {
  const db = openDatabase({ file: ":memory:", migrations });
  const statements: string[] = [];
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    statements.push(sql);
    return prepare(sql);
  }) as Db["prepare"];
  build(db);
  db.prepare = prepare;
  return { db, statements: statements.filter((sql) => !/^\s*(PRAGMA|BEGIN|COMMIT|SAVEPOINT|RELEASE|ROLLBACK)\b/i.test(sql)) };
}

/** SQLite's plan of a statement, one line per step (its parameters bound to NULL). */
function planOf(db: Db, sql: string): string[] {
  const named = [...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!);
  const args = named.length > 0 ? [Object.fromEntries(named.map((name) => [name, null]))] : Array((sql.match(/\?/g) ?? []).length).fill(null);
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((row) => row.detail);
}

// What the benchmark's growth check measures (cost must not grow with what is stored) rests on this: every statement
// the services run - hot paths, sweeps and pruning alike - finds its rows through a key or an index, never by reading a
// whole table or index (SQLite's "SCAN").
/** The statements of `statements` whose plan reads a whole table or index. */
function scansIn(db: Db, statements: readonly string[]): { sql: string; scans: string[] }[] {
  return statements
    .map((sql) => ({ sql: sql.replace(/\s+/g, " "), scans: planOf(db, sql).filter((step) => /^SCAN\b/.test(step)) }))
    .filter((s) => s.scans.length > 0);
}

// SQLite plans a bare bound LIMIT (`LIMIT ?`) with its value, so each run, which binds it again, compiles the
// statement again (see boundLimit). better-sqlite3 does not expose SQLite's count of those, so the SQL is checked.
/** The statements of `statements` with a bare bound LIMIT. */
function bareBoundLimits(statements: readonly string[]): string[] {
  return statements.filter((sql) => /\bLIMIT\s+[?@:$]/i.test(sql)).map((sql) => sql.replace(/\s+/g, " "));
}

test.each([
  ["order", orderMigrations, (db: Db) => new OrderStore(db, new Outbox(db))],
  ["inventory", inventoryMigrations, (db: Db) => new InventoryStore(db, new Outbox(db))],
  [
    "query",
    queryMigrations,
    (db: Db) => {
      new ReadStore(db);
      new Projector(db, silentLogger());
    },
  ],
] as const)("every statement of the %s service's stores reads through a key or an index, never a whole table, and none has a bare bound LIMIT", (_name, migrations, build) => {
  const { db, statements } = preparedBy(migrations, build);
  expect(statements.length).toBeGreaterThan(5);
  expect(scansIn(db, statements)).toEqual([]);
  expect(bareBoundLimits(statements)).toEqual([]);
});

test("every statement of the outbox relay and of an event consumer reads through a key or an index, never a whole table, and none has a bare bound LIMIT", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "query-plans", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const { db, statements } = preparedBy(orderMigrations, (db) => {
    new OutboxRelay({ db, nc, logger: silentLogger(), outbox: new Outbox(db) });
    new EventConsumer({ js: nc.jetstream(), db, logger: silentLogger(), stream: "ORDERS", durable: "plans", handle: () => {} });
  });
  expect(statements.length).toBeGreaterThan(5);
  expect(scansIn(db, statements)).toEqual([]);
  expect(bareBoundLimits(statements)).toEqual([]);
});
