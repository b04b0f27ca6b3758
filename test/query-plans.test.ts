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

// A page after a cursor must start reading at the cursor. Spelled out as `(t < ? OR (t = ? AND id < ?))`, a cursor is no
// index bound for SQLite: the customer's orders were read from the newest to the cursor on every page, so the nth page
// cost n pages of rows (every page of a customer with 200,000 orders: 100 s of the query service, against 1 s).
/** Whether a statement reads a page (a SELECT with ORDER BY and LIMIT; a chunked DELETE takes the first rows each time). */
const isPage = (sql: string) => /^\s*SELECT\b[\s\S]*\bORDER BY\b[\s\S]*\bLIMIT\b/i.test(sql);

/** The pages (isPage) of `statements` whose plan does not bound the index where the order starts. */
function pagesNotFromCursor(db: Db, statements: readonly string[]): { sql: string; plan: string[] }[] {
  return statements
    .filter(isPage)
    .map((sql) => ({ sql: sql.replace(/\s+/g, " "), plan: planOf(db, sql) }))
    .filter(({ sql, plan }) => {
      const [, column, descending] = /\bORDER BY (\w+)( DESC)?/i.exec(sql)!;
      // Ascending pages go on above the cursor, descending ones below it: a bound of the leading column (or a row value led by it) that way.
      const bound = new RegExp(`(\\b${column}|\\(${column}(,\\w+)+\\))${descending ? "<" : ">"}`);
      return !plan.some((step) => /^SEARCH\b/.test(step) && bound.test(step));
    });
}

test.each([
  ["order", orderMigrations, (db: Db) => new OrderStore(db, new Outbox(db))],
  ["inventory", inventoryMigrations, (db: Db) => new InventoryStore(db, new Outbox(db))],
  ["query", queryMigrations, (db: Db) => new ReadStore(db)],
] as const)("every paged statement of the %s service's stores starts reading at its cursor, not at the first row", (_name, migrations, build) => {
  const { db, statements } = preparedBy(migrations, build);
  expect(statements.filter(isPage).length).toBeGreaterThan(0);
  expect(pagesNotFromCursor(db, statements)).toEqual([]);
});

test("a page of daily sales reads from its cursor's day, of one SKU through its index, and pages through every row once", () => {
  let store: ReadStore | undefined;
  const { db, statements } = preparedBy(queryMigrations, (db) => void (store = new ReadStore(db)));
  const insert = db.prepare("INSERT INTO daily_sales (day, sku, currency_code, units, revenue_minor) VALUES (?, ?, ?, 1, 1)");
  const rows: string[] = [];
  for (const day of ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]) {
    for (const sku of ["A", "B", "C"]) {
      for (const currency of ["EUR", "USD"]) {
        insert.run(day, sku, currency);
        rows.push(`${day}/${sku}/${currency}`);
      }
    }
  }
  const all = (filter: { sku: string; start: string; end: string }, size: number) => {
    const seen: string[] = [];
    let after: [string, string, string] | undefined;
    for (;;) {
      const page = store!.sales(filter, after, size + 1);
      seen.push(...page.slice(0, size).map((r) => `${r.day}/${r.sku}/${r.currency_code}`));
      if (page.length <= size) return seen;
      const last = page[size - 1]!;
      after = [last.day, last.sku, last.currency_code];
    }
  };
  for (const size of [1, 2, 5, 100]) {
    expect(all({ sku: "", start: "0000-00-00", end: "9999-99-99" }, size)).toEqual(rows);
    expect(all({ sku: "B", start: "2026-01-02", end: "2026-01-03" }, size)).toEqual(rows.filter((r) => /^2026-01-0[23]\/B\//.test(r)));
    expect(all({ sku: "", start: "2026-01-03", end: "9999-99-99" }, size)).toEqual(rows.filter((r) => r >= "2026-01-03"));
  }
  // A cursor of another SKU's shape (forged, or from before) still means "after this row".
  expect(store!.sales({ sku: "B", start: "0000-00-00", end: "9999-99-99" }, ["2026-01-02", "C", "EUR"], 10).map((r) => `${r.day}/${r.sku}/${r.currency_code}`)).toEqual(
    rows.filter((r) => r > "2026-01-02/C/EUR" && r.includes("/B/")),
  );
  // One SKU's rows are read through its index (SKU and days), not through every SKU's rows of the days asked for.
  const plans = statements.filter((sql) => /FROM daily_sales/.test(sql)).map((sql) => planOf(db, sql).join(" "));
  expect(plans.some((plan) => /USING INDEX daily_sales_by_sku \(sku=\? AND day>\? AND day<\?\)/.test(plan))).toBe(true);
});
