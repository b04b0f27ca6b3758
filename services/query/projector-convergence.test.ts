// The projector converges whatever order events arrive in, and however many times: live projection with redeliveries and
// reordering gives what a rebuild's in-order replay does (seeded, so a failure names its seed and repeats).
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { join } from "node:path";
import { expect, test } from "vitest";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderStatus } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { Projector } from "./projector.js";
import { dumpReadModels } from "./read-store.js";
import { queryMigrations } from "./schema.js";

/** A small seeded generator (an LCG): the same seed, the same events and the same shuffle. */
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 1, 23, 59, 0);

function orderEvents(i: number, r: () => number): Event[] {
  const id = `ord_${i}`;
  const skus = ["A", "B", "C"].filter(() => r() < 0.6);
  if (skus.length === 0) skus.push("A");
  const create0 = T0 + Math.floor(r() * 3 * DAY);
  const items = skus.map((sku) => ({ sku, quantity: 1 + Math.floor(r() * 3), unitPriceMinor: 0n, lineTotalMinor: 0n }));
  const priced = items.map((it) => ({ ...it, unitPriceMinor: 250n, lineTotalMinor: 250n * BigInt(it.quantity) }));
  const total = priced.reduce((s, it) => s + it.lineTotalMinor, 0n);
  const snap = (version: number, status: OrderStatus, updateMs: number, lines = priced) => ({
    id, customerId: `c${i % 3}`, status, items: lines, totalMinor: status === OrderStatus.CONFIRMED || status === OrderStatus.CANCELLED ? total : 0n,
    currencyCode: "USD", version: BigInt(version), createTime: timestampFromMs(create0), updateTime: timestampFromMs(updateMs),
  });
  const ev = (version: number, kase: "orderCreated" | "orderConfirmed" | "orderRejected" | "orderCancelled", order: ReturnType<typeof snap>) =>
    create(EventSchema, { eventId: `evt-${id}-${version}`, aggregateId: id, aggregateVersion: BigInt(version), payload: { case: kase, value: { order } } as never });
  const out = [ev(1, "orderCreated", snap(1, OrderStatus.PENDING, create0, items))];
  const path = r();
  const t2 = create0 + Math.floor(r() * DAY);
  const t3 = t2 + Math.floor(r() * 2 * DAY);
  if (path < 0.5) {
    out.push(ev(2, "orderConfirmed", snap(2, OrderStatus.CONFIRMED, t2)));
    if (r() < 0.5) out.push(ev(3, "orderCancelled", snap(3, OrderStatus.CANCELLED, t3)));
  } else if (path < 0.75) {
    out.push(ev(2, "orderRejected", snap(2, OrderStatus.REJECTED, t2, items)));
  } else {
    out.push(ev(2, "orderCancelled", snap(2, OrderStatus.CANCELLED, t2, items)));
  }
  return out;
}

function stockEvents(sku: string, n: number): Event[] {
  return Array.from({ length: n }, (_, k) => {
    const version = k + 1;
    const item = { sku, name: sku, available: 100 - k, reserved: k, version: BigInt(version), updateTime: timestampFromMs(T0 + k * 1000) };
    return create(EventSchema, { eventId: `evt-${sku}-${version}`, aggregateId: sku, aggregateVersion: BigInt(version), payload: { case: "stockReserved", value: { item, orderId: "x", quantity: 1 } } });
  });
}

test("events applied out of order and more than once give the same read models as the in-order replay", () => {
  using temp = tempDir("orderly-projector-convergence-");
  for (let seed = 1; seed <= 30; seed++) {
    const r = rng(seed);
    const events: Event[] = [];
    for (let i = 0; i < 40; i++) events.push(...orderEvents(i, r));
    for (const sku of ["A", "B", "C"]) events.push(...stockEvents(sku, 8));
    const inOrder = openDatabase({ file: join(temp.path, `in-order-${seed}.db`), migrations: queryMigrations });
    const shuffled = openDatabase({ file: join(temp.path, `shuffled-${seed}.db`), migrations: queryMigrations });
    const a = new Projector(inOrder, silentLogger());
    const b = new Projector(shuffled, silentLogger());
    for (const e of events) a.handle(e, "");
    const mixed = [...events, ...events.filter(() => r() < 0.3)];
    for (let i = mixed.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [mixed[i], mixed[j]] = [mixed[j]!, mixed[i]!];
    }
    for (const e of mixed) b.handle(e, "");
    expect(dumpReadModels(shuffled), `seed ${seed}`).toEqual(dumpReadModels(inOrder));
    inOrder.close();
    shuffled.close();
  }
});
