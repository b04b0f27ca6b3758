import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { Outbox } from "../../shared/events/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { orderMigrations } from "./schema.js";
import { OrderStore } from "./store.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test("a prune with a 24 h cutoff keeps a 23 h old Idempotency-Key, which still names its order, and drops a 25 h old one, whose key then begins a new order", () => {
  const dir = mkdtempSync(join(tmpdir(), "orderly-order-store-"));
  dirs.push(dir);
  const db = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  const hour = 60 * 60 * 1000;
  const ttl = 24 * hour;
  let now = Date.UTC(2026, 11, 1);
  using _db = { [Symbol.dispose]: () => db.close() };
  const store = new OrderStore(db, new Outbox(db), () => now);
  const order = (id: string) => ({ id, customerId: "kim", items: [{ sku: "S", quantity: 1 }], requestId: "key-1", requestHash: "h" });
  const first = store.begin(order("ord-1")).order;

  now += 23 * hour;
  expect(store.pruneIdempotencyKeys(now - ttl)).toBe(0);
  expect(store.begin(order("ord-2")).order.id).toBe(first.id);

  now += 2 * hour;
  expect(store.pruneIdempotencyKeys(now - ttl)).toBe(1);
  expect(store.begin(order("ord-3")).order.id).toBe("ord-3");
});

test("expired Idempotency-Keys are pruned a chunk at a time, the oldest first, and the keys still in their TTL are kept", () => {
  const dir = mkdtempSync(join(tmpdir(), "orderly-order-store-"));
  dirs.push(dir);
  const db = openDatabase({ file: join(dir, "order.db"), migrations: orderMigrations });
  using _db = { [Symbol.dispose]: () => db.close() };
  let now = Date.UTC(2026, 11, 1);
  const store = new OrderStore(db, new Outbox(db), () => now);
  for (let i = 0; i < 7; i++) {
    store.begin({ id: `ord-${i}`, customerId: `c${i % 2}`, items: [{ sku: "S", quantity: 1 }], requestId: `key-${i}`, requestHash: "h" });
    now += 1000;
  }
  const keys = () => (db.prepare("SELECT request_id FROM idempotency_keys ORDER BY create_time").all() as { request_id: string }[]).map((r) => r.request_id);
  const before = Date.UTC(2026, 11, 1) + 5000; // keys 0-4 expired
  expect(store.pruneIdempotencyKeys(before, 2)).toBe(2);
  expect(keys()).toEqual(["key-2", "key-3", "key-4", "key-5", "key-6"]);
  expect(store.pruneIdempotencyKeys(before, 2)).toBe(2);
  expect(store.pruneIdempotencyKeys(before, 2)).toBe(1);
  expect(store.pruneIdempotencyKeys(before, 2)).toBe(0);
  expect(keys()).toEqual(["key-5", "key-6"]);
});
