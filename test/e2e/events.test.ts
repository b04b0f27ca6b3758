import { execFile } from "node:child_process";
import { readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { connect, headers } from "nats";
import { describe, expect, test } from "vitest";
import { dumpReadModels } from "../../services/query/read-store.js";
import { unpublishedRows } from "../../shared/events/index.js";
import { futureEvent } from "../helpers/events.js";
import { percentile } from "../helpers/load.js";
import { openReadOnly, snapshotModels, streamCounts } from "../helpers/models.js";
import { ROOT, runRebuild, waitFor } from "../helpers/processes.js";
import { api, reasonOf, startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";
import { checkStockInvariants } from "../fault/invariants.js";
import { SKUS, orderBurst, stockUp, waitForAllApplied, waitForConvergence } from "./events-helpers.js";

const run = promisify(execFile);

/** Commit → read-model lag of order events: when the projector applied each one, minus when its outbox row was written. */
function projectionLagMs(dataDir: string): number[] {
  const orderDb = openReadOnly(dataDir, "order.db");
  const queryDb = openReadOnly(dataDir, "query.db");
  try {
    const committed = new Map(
      (orderDb.prepare("SELECT event_id, create_time FROM outbox").all() as { event_id: string; create_time: number }[]).map((r) => [r.event_id, r.create_time]),
    );
    return (queryDb.prepare("SELECT event_id, applied_time FROM processed_events WHERE consumer = 'query-orders'").all() as { event_id: string; applied_time: number }[])
      .filter((r) => committed.has(r.event_id))
      .map((r) => r.applied_time - committed.get(r.event_id)!);
  } finally {
    orderDb.close();
    queryDb.close();
  }
}

describe("events through JetStream into the read models", () => {
  test("after 1,000 orders (creates and cancels mixed) every read model equals the write models; a rebuild from the streams is identical; a re-publish after a relay crash changes nothing", async () => {
    await using system = await startSystem();
    await stockUp(system);
    const started = performance.now();
    const statuses = await orderBurst(system, 1000, 1);
    const burstMs = performance.now() - started;
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    await waitForConvergence(system);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
    const converged = await waitForConvergence(system);
    expect(converged.write.orders).toHaveLength(1000);
    const streams = await streamCounts(system.nats);
    expect(converged.counts.processed).toBe(streams.ORDERS + streams.INVENTORY);
    expect(converged.counts.timeline).toBe(streams.ORDERS);
    // Never oversold under creates and cancels mixed: what is available and reserved is what was stocked, held by confirmed
    // orders only (once a release that failed at once has come through the cancel's event).
    const stockState = await waitFor(() => {
      const state = checkStockInvariants(system.dataDir, Object.fromEntries(SKUS.map((sku) => [sku, 5000])));
      return state.badItems.length === 0 && state.orphanReservations.length === 0 ? state : undefined;
    }, "stock that adds up", 15_000, 100);
    expect(stockState).toMatchObject({ confirmedWithoutReservation: [], pending: 0 });
    const lag = projectionLagMs(system.dataDir);
    console.log(
      `[figures] 1,000 orders in ${Math.round(burstMs)} ms (${Math.round((1000 / burstMs) * 1000)} orders/s), ` +
        `${streams.ORDERS + streams.INVENTORY} events; commit→read-model lag p50 ${percentile(lag, 50)} ms, p99 ${percentile(lag, 99)} ms`,
    );

    // A sample of orders through HTTP: the query side serves what the write side returned.
    const listed = await system.api("GET", "/v1/customers/cust-3/orders?pageSize=100");
    expect(listed.body.orders.length).toBe(converged.write.orders.filter((o) => o.customerId === "cust-3").length);
    const stock = await system.api("GET", "/v1/stock/EV-1");
    const written = converged.write.stock.find((s) => (s as { sku: string }).sku === "EV-1") as { available: number; reserved: number; version: number };
    expect(stock.body).toMatchObject({ sku: "EV-1", available: written.available, reserved: written.reserved, version: String(written.version) });

    // Rebuild every read model from the streams into a new file: identical rows.
    using temp = tempDir("orderly-rebuild-");
    const rebuildDir = temp.path;
    const out = join(rebuildDir, "query.db");
    const { stdout } = await runRebuild(system.env.query, ["--out", out]);
    expect(stdout).toContain("the rebuilt read models equal the live ones");
    const rebuilt = new Database(out, { readonly: true });
    const live = openReadOnly(system.dataDir, "query.db");
    expect(dumpReadModels(rebuilt)).toEqual(dumpReadModels(live));
    rebuilt.close();
    live.close();

    // The relay "crashes" after publishing but before recording it: every row is unpublished again on restart.
    await system.order.stop();
    const orderDb = new Database(join(system.dataDir, "order.db"));
    orderDb.prepare("DELETE FROM outbox_batches").run();
    const republished = unpublishedRows(orderDb);
    orderDb.close();
    expect(republished).toBeGreaterThan(2000);
    const restarted = await system.restart("order");
    const afterRepublish = await waitForConvergence(system);
    expect(await streamCounts(system.nats)).toEqual(streams);
    expect(afterRepublish.counts.processed).toBe(converged.counts.processed);
    expect(afterRepublish.read).toEqual(converged.read);
    expect(restarted.logs.join("\n")).not.toMatch(/"level":50/);
  });

  test("kill -9 of the projector in the middle of a burst: after a restart every event is applied exactly once", async () => {
    await using system = await startSystem();
    await stockUp(system);
    let killed = false;
    const statuses = await orderBurst(system, 600, 2, async (done) => {
      if (done === 250 && !killed) {
        killed = true;
        await system.query.stop("SIGKILL");
      }
    });
    expect(killed).toBe(true);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    await system.restart("query");
    await waitForConvergence(system);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
    const converged = await waitForConvergence(system);
    expect(converged.counts.processed).toBe(applied.inStreams);
    expect(converged.counts.timeline).toBe(applied.orderEvents);
    const units = converged.read.sales.reduce((sum, row) => sum + row.units, 0);
    expect(units).toBe(converged.write.sales.reduce((sum, row) => sum + row.units, 0));
  });

  test("kill -9 of nats-server during 1,000 order creations: writes keep succeeding, and after a restart no order is missing or doubled", async () => {
    await using system = await startSystem();
    await stockUp(system);
    let killedAt = 0;
    const statuses = await orderBurst(system, 1000, 3, async (done) => {
      if (done === 300 && killedAt === 0) {
        killedAt = done;
        await system.nats.kill("SIGKILL");
      }
    });
    expect(killedAt).toBe(300);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const backlog = (() => {
      const db = openReadOnly(system.dataDir, "order.db");
      const n = unpublishedRows(db);
      db.close();
      return n;
    })();
    expect(backlog).toBeGreaterThan(500);

    const restartedAt = performance.now();
    await system.nats.restart();
    await waitFor(() => {
      const db = openReadOnly(system.dataDir, "order.db");
      const n = unpublishedRows(db);
      db.close();
      return n === 0;
    }, "the order outbox backlog to drain", 60_000, 20);
    const drainMs = performance.now() - restartedAt;
    console.log(`[figures] relay drained a backlog of ${backlog} order events in ${Math.round(drainMs)} ms after NATS came back (${Math.round((backlog / drainMs) * 1000)} events/s, including reconnect)`);

    const converged = await waitForConvergence(system);
    expect(converged.write.orders).toHaveLength(1000);
    expect(new Set(converged.read.orders.map((o) => (o as { id: string }).id)).size).toBe(1000);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
  });

  test("kill -9 of the order service while its relay drains a backlog: after a restart every event is in the stream once and applied once", async () => {
    await using system = await startSystem();
    await stockUp(system);
    await system.nats.kill("SIGKILL");
    const statuses = await orderBurst(system, 600, 2);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const unpublished = () => {
      const db = openReadOnly(system.dataDir, "order.db");
      try {
        return unpublishedRows(db);
      } finally {
        db.close();
      }
    };
    const backlog = unpublished();
    expect(backlog).toBeGreaterThan(1000);

    // Killed as soon as the relay has published part of the backlog: a batch may be in NATS but not yet recorded as sent.
    // (The relay may drain it all before the test looks: then the kill comes after, which must change nothing either.)
    await system.nats.restart();
    const { left } = await waitFor(() => {
      const n = unpublished();
      return n < backlog ? { left: n } : undefined;
    }, "the relay to start draining", 30_000, 5);
    await system.order.stop("SIGKILL");
    console.log(`[figures] order service killed with ${left} of ${backlog} outbox events unpublished`);
    await system.restart("order");

    const converged = await waitForConvergence(system);
    expect(converged.write.orders).toHaveLength(600);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
    // Each outbox row once in the stream, what the relay sent again before the kill dropped as a duplicate (Nats-Msg-Id).
    const db = openReadOnly(system.dataDir, "order.db");
    const outboxRows = (db.prepare("SELECT count(*) AS n FROM outbox").get() as { n: number }).n;
    db.close();
    expect((await streamCounts(system.nats)).ORDERS).toBe(outboxRows);
    expect(converged.counts.timeline).toBe(applied.orderEvents);
  });

  test("nats-server back with an empty store (its streams and consumers gone): the services make them again, and new writes reach the read models without a restart", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/WIPE-1:restock", { body: { quantity: 10 } });
    const before = await system.api("POST", "/v1/orders", { body: { customerId: "wes", items: [{ sku: "WIPE-1", quantity: 1 }] } });
    expect((await system.api("GET", `/v1/orders/${before.body.id}?minVersion=${before.body.version}`)).status).toBe(200);

    await system.nats.kill("SIGKILL");
    for (const entry of readdirSync(system.nats.storeDir)) rmSync(join(system.nats.storeDir, entry), { recursive: true, force: true });
    await system.nats.restart();

    const after = await system.api("POST", "/v1/orders", { body: { customerId: "wes", items: [{ sku: "WIPE-1", quantity: 2 }] } });
    expect(after.status).toBe(200);
    const read = await system.api("GET", `/v1/orders/${after.body.id}?minVersion=${after.body.version}`, { headers: { "x-request-timeout": "30000" } });
    expect({ status: read.status, order: read.body.status }).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });
    // The inventory's events flow again too: the projected stock counts both orders.
    await waitFor(async () => (await system.api("GET", "/v1/stock/WIPE-1")).body.reserved === 3, "the projected stock of both orders", 30_000, 100);
  });

  test("query.db deleted while the query service was stopped: at its next start it replays the streams and every read model is whole again, each event applied once", async () => {
    await using system = await startSystem();
    await stockUp(system);
    expect((await orderBurst(system, 60, 7)).filter((s) => s !== 200)).toEqual([]);
    const before = await waitForConvergence(system);

    await system.query.stop();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(system.dataDir, `query.db${suffix}`), { force: true });
    await system.restart("query");

    const after = await waitForConvergence(system);
    expect(after.read).toEqual(before.read);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
    expect(system.query.logs.some((line) => line.includes("replaying its stream from the start"))).toBe(true);
    const some = (before.read.orders as { id: string }[])[0]!;
    expect((await system.api("GET", `/v1/orders/${some.id}`)).status).toBe(200);
  });

  test("a poison event (not an Event at all) ends in the dead-letter record on its first delivery, though more are allowed, and later events are still applied", async () => {
    await using system = await startSystem({ CONSUMER_MAX_DELIVERIES: "3", CONSUMER_RETRY_DELAY_MS: "20", CONSUMER_ACK_WAIT_MS: "6000" });
    const nc = await connect(system.nats.connectOptions);
    try {
      const js = nc.jetstream();
      await waitFor(async () => (await streamCounts(system.nats)).ORDERS >= 0, "the streams to exist");
      // Every service's durable consumers take the consumer settings: the order service's too.
      const jsm = await nc.jetstreamManager();
      const ackWaits = await waitFor(async () => {
        const found: Record<string, number> = {};
        for (const stream of ["ORDERS", "INVENTORY"]) for await (const c of jsm.consumers.list(stream)) found[c.name] = c.config.ack_wait! / 1e6;
        return Object.keys(found).length === 4 ? found : undefined;
      }, "the four durable consumers");
      expect(ackWaits).toEqual({ "query-orders": 6000, "query-inventory": 6000, "inventory-order-events": 6000, "order-reservation-outcomes": 6000 });
      await js.publish("orderly.orders.created", new TextEncoder().encode("this is not protobuf"), { msgID: "poison-1" });
    } finally {
      await nc.close();
    }
    const letter = await waitFor(() => {
      const db = openReadOnly(system.dataDir, "query.db");
      const row = db.prepare("SELECT consumer, deliveries, reason, subject FROM dead_letters").get() as
        | { consumer: string; deliveries: number; reason: string; subject: string }
        | undefined;
      db.close();
      return row;
    }, "the poison event in dead_letters");
    expect(letter).toMatchObject({ consumer: "query-orders", deliveries: 1, subject: "orderly.orders.created" });
    expect(letter!.reason).toMatch(/UndecodableEvent/);
    // Never retried: it could not decode the second time either.
    expect(system.query.logs.filter((line) => line.includes("event failed; will retry"))).toEqual([]);

    await system.api("POST", "/v1/inventory/AFTER-1:restock", { body: { quantity: 3 } });
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "zed", items: [{ sku: "AFTER-1", quantity: 1 }] } });
    const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
  });

  test("events of a payload type this version does not know (a newer order service rolled out before its consumers), more than a consumer holds unacked, are kept and acked by each consumer of the stream and reported; the orders after them are applied, and a restart keeps them", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/FUTURE-1:restock", { body: { quantity: 3 } });
    const future = Array.from({ length: 1050 }, (_, i) => futureEvent(`ord_future_${i}`, `req-future-${i}`));
    // The first as a newer order service sends it, in the trace of the request that caused it.
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traced = headers();
    traced.set("traceparent", `00-${traceId}-00f067aa0ba902b7-01`);
    const nc = await connect(system.nats.connectOptions);
    try {
      const js = nc.jetstream();
      await js.publish("orderly.orders.created", future[0]!.data, { msgID: future[0]!.event.eventId, headers: traced });
      await Promise.all(future.slice(1).map(({ event, data }) => js.publish("orderly.orders.created", data, { msgID: event.eventId })));
    } finally {
      await nc.close();
    }
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "fay", items: [{ sku: "FUTURE-1", quantity: 1 }] } });
    const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    const keptBy = () => {
      const counts: Record<string, number> = {};
      for (const file of ["query.db", "inventory.db"] as const) {
        const db = openReadOnly(system.dataDir, file);
        for (const row of db.prepare("SELECT consumer, count(*) AS n FROM deferred_events GROUP BY consumer").all() as { consumer: string; n: number }[]) counts[row.consumer] = row.n;
        db.close();
      }
      return counts;
    };
    await waitFor(() => keptBy()["inventory-order-events"] === 1050, "the inventory to keep the events");
    expect(keptBy()).toEqual({ "query-orders": 1050, "inventory-order-events": 1050 });
    type Report = { processes: { name: string; status?: { consumers: { durable: string; deferred: number; ackPending?: number }[] } }[] };
    const consumersOf = async (name: string) => ((await api(system.adminUrl, "GET", "/status.json")).body as Report).processes.find((p) => p.name === name)?.status?.consumers;
    const warnings = () => system.query.logs.filter((line) => line.includes("is kept in its database until a consumer that knows the type starts")).length;
    // The server counts acks as it takes them in, a report reads a consumer's lag at most once a second, and log lines arrive when written.
    const query = await waitFor(async () => {
      const reported = (await consumersOf("query"))?.find((c) => c.durable === "query-orders");
      return reported?.ackPending === 0 && warnings() >= 11 ? reported : undefined;
    }, "the query's consumer reported with nothing unacked, and its warnings logged");
    expect(query).toMatchObject({ deferred: 1050, ackPending: 0 });
    expect(warnings()).toBe(11);
    // The first kept is logged with the request and the trace that caused it, as other lines about an event are.
    const first = JSON.parse(system.query.logs.find((line) => line.includes("is kept in its database until"))!) as Record<string, unknown>;
    expect(first).toMatchObject({ eventId: future[0]!.event.eventId, requestId: "req-future-0", traceId });
    expect(await consumersOf("inventory")).toContainEqual(expect.objectContaining({ durable: "inventory-order-events", deferred: 1050 }));

    // The same version started again knows the type no better: it keeps them, and applies the next order's events.
    await system.query.stop();
    await system.restart("query");
    const next = await system.api("POST", "/v1/orders", { body: { customerId: "fay", items: [{ sku: "FUTURE-1", quantity: 1 }] } });
    expect((await system.api("GET", `/v1/orders/${next.body.id}?minVersion=${next.body.version}`)).body).toEqual(next.body);
    expect(keptBy()).toEqual({ "query-orders": 1050, "inventory-order-events": 1050 });
  });

  test("full streams refuse new events rather than drop old ones: writes go on, and once STREAM_MAX_EVENTS is raised every read model catches up", async () => {
    // Room in each stream for the events of a few dozen orders.
    await using system = await startSystem({ STREAM_MAX_EVENTS: "100" });
    await stockUp(system);
    const statuses = await orderBurst(system, 200, 5);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    // The streams are full and still start at their first event; the rest wait in the outboxes.
    const waiting = await waitFor(() => {
      const counts = snapshotModels(system.dataDir).counts;
      return counts.unpublished > 0 && system.order.logs.some((line) => line.includes("a stream is full")) ? counts : undefined;
    }, "the order service's relay refused by a full stream");
    const nc = await connect(system.nats.connectOptions);
    try {
      const jsm = await nc.jetstreamManager();
      for (const name of ["ORDERS", "INVENTORY"]) expect((await jsm.streams.info(name)).state.first_seq).toBe(1);
    } finally {
      await nc.close();
    }
    expect(waiting.unpublished).toBeGreaterThan(0);

    // Raised, and set on each stream by its producer's start: everything waiting is published and applied, once.
    for (const producer of ["order", "inventory"] as const) await system.restart(producer, { STREAM_MAX_EVENTS: "1000000" });
    const converged = await waitForConvergence(system);
    expect(converged.counts.unpublished).toBe(0);
    const applied = await waitForAllApplied(system);
    expect(applied.processed).toBe(applied.inStreams);
  });

  test("read your writes: a read with the version a write returned sees that write, an order's and a SKU's stock level (with the query's consumers under a QUERY_CONSUMER_NAME of their own)", async () => {
    // The NATS users' permissions follow the name (before, they allowed only query-*: this read model never got an event).
    await using system = await startSystem({ QUERY_CONSUMER_NAME: "copy-b" });
    await system.api("POST", "/v1/inventory/RYW-1:restock", { body: { quantity: 100 } });
    for (let i = 0; i < 20; i++) {
      const created = await system.api("POST", "/v1/orders", { body: { customerId: "ryw", items: [{ sku: "RYW-1", quantity: 1 }] } });
      const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual(created.body);
      if (i % 5 === 0) {
        const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
        const after = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${cancelled.body.version}`);
        expect(after.body.status).toBe("ORDER_STATUS_CANCELLED");
      }
    }
    // The query service's own answer, a tenth of the budget early: the version was not reached (not the gateway's deadline).
    const never = await system.api("GET", "/v1/orders/ord_01J00000000000000000000000?minVersion=1", { headers: { "x-request-timeout": "1500" } });
    expect([never.status, reasonOf(never.body)]).toEqual([504, "VERSION_NOT_REACHED"]);
    // The version waited for is told back exactly, also past 2^53 (int64, never rounded through a JS number).
    // (A budget long enough that the query service's own answer, not the gateway's deadline, ends it on a slow machine.)
    const far = await system.api("GET", "/v1/orders/ord_01J00000000000000000000000?minVersion=9007199254740993", { headers: { "x-request-timeout": "2000" } });
    expect({ status: far.status, metadata: far.body.details.find((d: { reason?: string }) => d.reason)?.metadata }).toEqual({
      status: 504,
      metadata: { orderId: "ord_01J00000000000000000000000", minVersion: "9007199254740993" },
    });

    // The stock level too, at the version a restock answered (the item's): of a SKU new to the read model, and of one
    // whose older level the gateway has cached (a read of the cached version ahead of the write's goes past the cache).
    // Each read is sent before the restock it waits for, so it waits for the event that applies it.
    for (const sku of ["RYW-2", "RYW-1"]) {
      const cached = await system.api("GET", `/v1/stock/${sku}`);
      const next = cached.status === 200 ? Number(cached.body.version) + 1 : 1;
      const reading = system.api("GET", `/v1/stock/${sku}?minVersion=${next}`, { headers: { "x-request-timeout": "10000" } });
      const restocked = await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 7 } });
      expect(restocked.body.version).toBe(String(next));
      const stock = await reading;
      expect({ sku, before: cached.status, status: stock.status, available: stock.body.available, version: stock.body.version }).toEqual({
        sku,
        before: sku === "RYW-2" ? 404 : 200,
        status: 200,
        available: restocked.body.available,
        version: restocked.body.version,
      });
    }
    const stockNever = await system.api("GET", "/v1/stock/RYW-1?minVersion=1000", { headers: { "x-request-timeout": "1500" } });
    expect({ status: stockNever.status, reason: reasonOf(stockNever.body), metadata: stockNever.body.details.find((d: { reason?: string }) => d.reason)?.metadata }).toEqual({
      status: 504,
      reason: "VERSION_NOT_REACHED",
      metadata: { sku: "RYW-1", minVersion: "1000" },
    });
  });

  test("the README's example reads an order's events from the ORDERS stream as the operator user, and decodes them", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/README-1:restock", { body: { quantity: 5 } });
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "reader", items: [{ sku: "README-1", quantity: 2 }] } });
    expect(created.status).toBe(200);

    // The ```ts block of "Reading the events yourself", run as a reader would from the repository's root: here from a folder
    // of its own that sees the same packages, with the generated code and the data directory where this system has them.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const example = /\*\*Reading the events yourself\.\*\*[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    if (example === undefined) throw new Error("README.md has no ```ts example under **Reading the events yourself.**");
    using dir = tempDir("orderly-readme-events-");
    symlinkSync(join(ROOT, "node_modules"), join(dir.path, "node_modules"));
    const file = join(dir.path, "read-orders.mts");
    writeFileSync(file, example.replaceAll('"./proto/', `"${ROOT}/proto/`).replaceAll('".data/', `"${system.dataDir}/`));
    const { stdout } = await run(process.execPath, ["--import", "tsx", file], { cwd: dir.path, env: { ...process.env, NATS_URL: system.nats.url }, timeout: 30_000 });

    const events = stdout.trim().split("\n").map((line) => {
      const [subject, json] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
      return { subject, event: JSON.parse(json) as { aggregateId: string; aggregateVersion: string } };
    });
    const ofOrder = events.filter((e) => e.event.aggregateId === created.body.id);
    expect(ofOrder.map((e) => [e.subject, e.event.aggregateVersion])).toEqual([
      ["orderly.orders.created", "1"],
      ["orderly.orders.confirmed", "2"],
    ]);
  });
});
