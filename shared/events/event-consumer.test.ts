import { toBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { join } from "node:path";
import { connect, type JetStreamClient, type NatsConnection } from "nats";
import { expect, test } from "vitest";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { futureEvent } from "../../test/helpers/events.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { connectWithStreams, startNats, type NatsServer } from "../../test/helpers/nats.js";
import { startNatsPublishFilter } from "../../test/helpers/nats-publish-filter.js";
import { waitFor } from "../../test/helpers/processes.js";
import { createLogger, silentLogger } from "../logging/index.js";
import { openDatabase, type Db } from "../sqlite/index.js";
import { EventConsumer, type EventConsumerOptions } from "./event-consumer.js";
import { InvalidEvent } from "./event-decoding.js";
import { newEvent } from "./new-event.js";
import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration } from "./schema.js";
import { ensureDurableConsumer, ensureStreams, renewIfUnreachable } from "./stream-setup.js";
import { streams, subjectOf } from "./subjects.js";

/** A consumer's tables, as the services migrate them. */
const INBOX = [inboxMigration, deadLetterTimeMigration, deferredEventsMigration];

/** A "projector" deferred_events row for `event` at stream sequence `seq` (and time `seq`), as a version that did not know its type kept it; `payload`, when given, instead of the event's bytes. */
function keepAsAnOlderVersionDid(db: Db, event: Event, seq: number, payload?: Buffer): void {
  db.prepare(
    "INSERT INTO deferred_events (consumer, event_id, stream, stream_seq, stream_time, subject, payload, traceparent, create_time) VALUES ('projector', ?, 'ORDERS', ?, ?, ?, ?, NULL, 0)",
  ).run(event.eventId, seq, seq, subjectOf(event), payload ?? Buffer.from(toBinary(EventSchema, event)));
}

/** The "projector" durable consumer of the orders stream, retrying after 20 ms. */
function projector(js: JetStreamClient, db: Db, options: Pick<EventConsumerOptions, "handle" | "maxDeliveries" | "transactions"> & Partial<Pick<EventConsumerOptions, "logger" | "onApplied">>): EventConsumer {
  return new EventConsumer({ js, db, logger: silentLogger(), stream: streams.orders.name, durable: "projector", retryDelayMs: 20, ...options });
}

test("an event whose ack was lost with the connection is redelivered and skipped: applied once", async () => {
  await using nats = await startNats();
  const logger = silentLogger();
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  // Closed by the test itself after the event is applied (closing twice is harmless).
  await using firstClient = await connectWithStreams(nats);
  const { nc: first, jsm } = firstClient;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 500);
  const event = newEvent("order-1", 1, Date.now(), { case: "orderCancelled", value: {} });
  await first.jetstream().publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });

  const applied: string[] = [];
  const options = { db, logger, stream: streams.orders.name, durable: "projector", handle: () => {}, retryDelayMs: 50 };
  // The connection closes after the event is applied and before its ack is written.
  const closing = new EventConsumer({ ...options, js: first.jetstream(), onApplied: (e) => (applied.push(e.eventId), void first.close()) });
  closing.start();
  await waitFor(() => applied.length === 1, "the event applied");
  await closing.close();
  expect([applied, closing.stats.applied]).toEqual([[event.eventId], 1]);

  // Once connected again, JetStream redelivers the unacked event and the inbox skips it.
  const second = await connect(nats.connectOptions);
  const resumed = new EventConsumer({ ...options, js: second.jetstream(), onApplied: (e) => applied.push(e.eventId) });
  resumed.start();
  await waitFor(() => resumed.stats.skippedDuplicates === 1, "the redelivery skipped");
  await waitFor(async () => (await resumed.lag())?.ackPending === 0, "the redelivery acked");
  await resumed.close();
  await second.close();
  expect([applied, resumed.stats.applied]).toEqual([[event.eventId], 0]);
});

// "rolls back the transaction": what SQLite does itself on some errors (disk full, I/O), savepoints and all.
test.each([{ failure: "throws" }, { failure: "rolls back the transaction" }])(
  "a burst is applied in few transactions; an event that $failure costs only itself: it is dead-lettered, the rest applied once",
  async ({ failure }) => {
    await using nats = await startNats();
    await using client = await connectWithStreams(nats);
    const { nc, jsm } = client;
    // An ack wait long enough that a stalled worker sees no redelivery (none is counted below).
    await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 5000);
    const db = openDatabase({ file: ":memory:", migrations: [...INBOX, "CREATE TABLE effects (event_id TEXT PRIMARY KEY)"] });
    // 300 events waiting before the consumer starts; the 100th fails every time, after writing its effect.
    const events = Array.from({ length: 300 }, (_, i) => newEvent(`order-${i}`, 1, Date.now(), { case: "orderCancelled", value: {} }));
    const poison = events[99]!.eventId;
    const js = nc.jetstream();
    await Promise.all(events.map((event) => js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId })));

    const record = db.prepare("INSERT INTO effects (event_id) VALUES (?)");
    let transactions = 0;
    const lines: Record<string, unknown>[] = [];
    const consumer = projector(js, db, {
      logger: createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }),
      maxDeliveries: 2,
      handle: (event) => {
        record.run(event.eventId);
        if (event.eventId !== poison) return;
        // What SQLite does itself on some errors: the whole transaction is gone, savepoints and all.
        if (failure === "rolls back the transaction") db.exec("ROLLBACK");
        throw new Error("this event always fails");
      },
      transactions: { run: (_name, fn) => (transactions++, fn()) },
    });
    consumer.start();
    await waitFor(() => consumer.stats.applied === 299 && consumer.stats.deadLettered === 1, "every event applied or dead-lettered");
    // Nothing left pending: the dead-lettered message was terminated, so it does not come back every ack wait.
    await waitFor(async () => (await consumer.lag())?.ackPending === 0, "every message acked or terminated");
    await consumer.close();

    const effects = db.prepare("SELECT event_id FROM effects").pluck().all() as string[];
    expect(effects.sort()).toEqual(events.map((e) => e.eventId).filter((id) => id !== poison).sort());
    expect(db.prepare("SELECT event_id, deliveries FROM dead_letters").all()).toEqual([{ event_id: poison, deliveries: 2 }]);
    expect(consumer.stats).toMatchObject({ applied: 299, skippedDuplicates: 0, retried: 1, deadLettered: 1 });
    // Its log lines name the event (and its subject), so it can be found.
    const logged = lines.filter((line) => line.eventId === poison).map((line) => [line.msg, line.subject]);
    expect(logged).toEqual([
      ["event failed; will retry", "orderly.orders.cancelled"],
      ["event dead-lettered", "orderly.orders.cancelled"],
    ]);
    // Far fewer transactions than events when only the event's savepoint is undone: the deliveries of one read of the socket share one.
    if (failure === "throws") expect(transactions).toBeLessThan(100);
  },
);

test("an event that can never apply (undecodable, or refused by its handler as an InvalidEvent) is dead-lettered on its first delivery; a failure that may pass is retried", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 5000);
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  const [refused, flaky, fine] = ["refused", "flaky", "fine"].map((id) => newEvent(id, 1, Date.now(), { case: "orderCancelled", value: {} }));
  const js = nc.jetstream();
  for (const event of [refused!, flaky!, fine!]) await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });
  await js.publish("orderly.orders.cancelled", Buffer.from("not protobuf \xff\xff"));

  let flakyCalls = 0;
  const consumer = projector(js, db, {
    maxDeliveries: 5,
    handle: (event) => {
      if (event.eventId === refused!.eventId) throw new InvalidEvent("a version no row can hold");
      if (event.eventId === flaky!.eventId && ++flakyCalls < 3) throw new Error("the disk was busy");
    },
  });
  consumer.start();
  await waitFor(() => consumer.stats.applied === 2 && consumer.stats.deadLettered === 2, "two applied and two dead-lettered");
  await waitFor(async () => (await consumer.lag())?.ackPending === 0, "every message acked or terminated");
  await consumer.close();

  const letters = db.prepare("SELECT event_id, deliveries, reason FROM dead_letters ORDER BY stream_seq").all();
  expect(letters).toEqual([
    { event_id: refused!.eventId, deliveries: 1, reason: "InvalidEvent: a version no row can hold" },
    { event_id: null, deliveries: 1, reason: expect.stringMatching(/^UndecodableEvent: not an orderly.events.v1.Event/) },
  ]);
  // Only the flaky event was retried (twice), and then applied.
  expect(consumer.stats).toMatchObject({ applied: 2, retried: 2, deadLettered: 2 });
});

test("events of a payload type this code does not know (a newer producer's), more than a durable holds unacked, are kept and acked while the others flow; a consumer that knows the type applies them at its start", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 1000);
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  const js = nc.jetstream();
  // More than the 1,000 unacked messages JetStream delivers a durable (max_ack_pending), then one this code knows.
  const future = Array.from({ length: 1100 }, (_, i) => futureEvent(`future-${i}`));
  await Promise.all(future.map(({ event, data }) => js.publish("orderly.orders.cancelled", data, { msgID: event.eventId })));
  const after = newEvent("after", 1, Date.now(), { case: "orderCancelled", value: {} });
  await js.publish(subjectOf(after), toBinary(EventSchema, after), { msgID: after.eventId });

  const lines: { msg: string; eventId?: string; fields?: number[] }[] = [];
  const logger = silentLogger();
  logger.warn = ((fields: { eventId?: string; fields?: number[] }, msg: string) => void lines.push({ msg, eventId: fields.eventId, fields: fields.fields })) as typeof logger.warn;
  const older = projector(js, db, { maxDeliveries: 1, logger, handle: () => {} });
  older.start();
  await waitFor(() => older.stats.applied === 1 && older.stats.deferred === 1100, "the later event applied, the unknown ones kept", 20_000);
  await waitFor(async () => (await older.lag())?.ackPending === 0, "every message acked");
  expect(db.prepare("SELECT count(*) FROM deferred_events WHERE consumer = 'projector'").pluck().get()).toBe(1100);
  expect(db.prepare("SELECT count(*) FROM dead_letters").pluck().get()).toBe(0);
  expect(older.stats).toMatchObject({ applied: 1, retried: 0, deadLettered: 0, deferred: 1100 });
  expect(older.deferredCount()).toBe(1100);
  // The first one kept is logged, then one in a hundred.
  expect(lines).toHaveLength(11);
  expect(lines[0]).toEqual({
    msg: "an event of a payload type this consumer does not know (a newer version's) is kept in its database until a consumer that knows the type starts: upgrade this service",
    eventId: future[0]!.event.eventId,
    fields: [30],
  });
  await older.close();

  // What an upgraded consumer finds: events kept by an older one whose types it knows (here four, kept as an older
  // version would have, in stream order) beside those still unknown to it. One no longer decodes (a field the older
  // code kept unread, malformed: dead-lettered, and the ones after it still applied), one applies, one its handler
  // refuses as invalid (dead-lettered), one fails twice, as a delivered event may, and applies on its third try.
  const known = ["garbled", "applies", "invalid", "flaky"].map((id) => newEvent(id, 1, Date.now(), { case: "orderCancelled", value: {} }));
  // An OrderCancelled (Event field 13) that says it is 5 bytes long and ends after 1.
  const garbled = Buffer.concat([toBinary(EventSchema, newEvent("garbled", 1, Date.now(), { case: undefined }), { writeUnknownFields: false }), Buffer.from([0x6a, 0x05, 0x0a])]);
  known.forEach((event, i) => keepAsAnOlderVersionDid(db, event, 2000 + i, i === 0 ? garbled : undefined));
  const handled: string[] = [];
  let flakyTries = 0;
  const upgraded = projector(js, db, {
    maxDeliveries: 3,
    handle: (event) => {
      if (event.aggregateId === "invalid") throw new InvalidEvent("refused");
      if (event.aggregateId === "flaky" && ++flakyTries < 3) throw new Error("not yet");
      handled.push(event.aggregateId);
    },
    onApplied: (event) => handled.push(`applied ${event.aggregateId}`),
  });
  upgraded.start();
  await waitFor(() => handled.includes("applied flaky"), "the flaky event applied on its third try");
  expect(handled).toEqual(["applies", "applied applies", "flaky", "applied flaky"]);
  expect(upgraded.stats).toMatchObject({ applied: 2, deadLettered: 2, retried: 2 });
  const applied = db.prepare("SELECT event_id FROM processed_events WHERE consumer = 'projector' AND event_id IN (?, ?, ?, ?) ORDER BY applied_time, event_id").pluck();
  expect(applied.all(...known.map((e) => e.eventId)).sort()).toEqual([known[1]!.eventId, known[3]!.eventId].sort());
  expect(db.prepare("SELECT event_id, reason FROM dead_letters ORDER BY id").all()).toEqual([
    { event_id: known[0]!.eventId, reason: expect.stringMatching(/^UndecodableEvent: not an orderly.events.v1.Event/) },
    { event_id: known[2]!.eventId, reason: "InvalidEvent: refused" },
  ]);
  expect(db.prepare("SELECT count(*) FROM deferred_events WHERE event_id IN (?, ?, ?, ?)").pluck().get(...known.map((e) => e.eventId))).toBe(0);
  expect(upgraded.deferredCount()).toBe(1100);
  await upgraded.close();
});

test("a kept event whose transaction cannot begin (its database locked by another connection) is tried again without that counting as a try: applied once the lock is gone, never dead-lettered", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  await ensureDurableConsumer(client.jsm, streams.orders.name, "projector", "orderly.orders.>", 1000);
  using temp = tempDir("orderly-kept-");
  const file = join(temp.path, "consumer.db");
  const db = openDatabase({ file, migrations: INBOX, busyTimeoutMs: 10 });
  const event = newEvent("locked", 1, Date.now(), { case: "orderCancelled", value: {} });
  keepAsAnOlderVersionDid(db, event, 1);
  const other = new Database(file);
  other.exec("BEGIN IMMEDIATE");
  const handled: string[] = [];
  const consumer = projector(client.nc.jetstream(), db, { maxDeliveries: 2, handle: (e) => void handled.push(e.aggregateId) });
  consumer.start();
  // More failed begins than the tries allowed.
  await waitFor(() => consumer.stats.retried >= 4, "the kept event's transaction to fail four times");
  other.exec("ROLLBACK");
  other.close();
  await waitFor(() => consumer.stats.applied === 1, "the kept event applied once the lock is gone");
  expect(handled).toEqual(["locked"]);
  expect(consumer.stats.deadLettered).toBe(0);
  expect([consumer.deferredCount(), db.prepare("SELECT count(*) FROM dead_letters").pluck().get()]).toEqual([0, 0]);
  await consumer.close();
  db.close();
});

/**
 * A consumer's database in `dir` with an `effects` table its handler writes 64 KiB rows into (`write`); `fill()` keeps the
 * file from growing, so SQLite refuses those writes with SQLITE_FULL as on a full disk, and `room()` lets it grow again.
 */
function fillableDatabase(dir: string) {
  const db = openDatabase({ file: join(dir, "consumer.db"), migrations: [...INBOX, "CREATE TABLE effects (event_id TEXT PRIMARY KEY, body BLOB)"] });
  const record = db.prepare("INSERT INTO effects (event_id, body) VALUES (?, ?)");
  return {
    db,
    write: (eventId: string) => void record.run(eventId, Buffer.alloc(64 * 1024)),
    fill: () => void db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`),
    room: () => void db.pragma("max_page_count = 1073741823"),
  };
}

test("a consumer whose database stays full says so once at error for the whole episode (not for each event), warns at most every 10 s, and says when it works again", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 5000);
  using dir = tempDir("orderly-consumer-full-episode-");
  const { db, write, fill, room } = fillableDatabase(dir.path);
  fill();
  const events = Array.from({ length: 20 }, (_, i) => newEvent(`order-${i}`, 1, Date.now(), { case: "orderCancelled", value: {} }));
  const js = nc.jetstream();
  await Promise.all(events.map((event) => js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId })));
  const lines: { level: number; msg: string }[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const tries = new Map<string, number>();
  // Redeliveries 1 ms apart, doubling: a dozen tries of each event within seconds.
  const consumer = new EventConsumer({ js, db, logger, stream: streams.orders.name, durable: "projector", retryDelayMs: 1, maxDeliveries: 2, handle: (e) => {
    tries.set(e.eventId, (tries.get(e.eventId) ?? 0) + 1);
    write(e.eventId);
  } });
  consumer.start();
  await waitFor(() => events.every((e) => (tries.get(e.eventId) ?? 0) >= 13), "every event tried 13 times", 60_000);
  room();
  await waitFor(() => consumer.stats.applied === 20, "every event applied once there is room", 60_000);
  await consumer.close();
  const said = (level: number) => lines.filter((line) => line.level === level).map((line) => line.msg);
  expect(said(50)).toEqual(["the consumer's database keeps failing: its events wait until it works again (is its disk full, or read-only?)"]);
  expect(said(40).length).toBeLessThanOrEqual(3);
  expect(said(30)).toContain("the consumer's database works again");
  expect(consumer.stats.deadLettered).toBe(0);
  db.close();
});

test("a kept event whose handler meets its database full is tried again at a growing delay, never dead-lettered for it: applied once there is room", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  await ensureDurableConsumer(client.jsm, streams.orders.name, "projector", "orderly.orders.>", 1000);
  using temp = tempDir("orderly-kept-full-");
  const { db, write, fill, room } = fillableDatabase(temp.path);
  const event = newEvent("full", 1, Date.now(), { case: "orderCancelled", value: {} });
  keepAsAnOlderVersionDid(db, event, 1);
  // The database may not grow: SQLite refuses the handler's write as it refuses one on a full disk.
  fill();
  const tried: number[] = [];
  const consumer = projector(client.nc.jetstream(), db, {
    maxDeliveries: 2,
    handle: (e) => {
      tried.push(Date.now());
      write(e.eventId);
    },
  });
  consumer.start();
  // Twice the tries that would dead-letter a failing handler.
  await waitFor(() => tried.length >= 4, "the kept event's handler refused four times", 30_000);
  expect(consumer.stats.deadLettered).toBe(0);
  // The waits between tries grow (20 ms doubling), not a fixed retry at the first delay for ever.
  const waits = tried.slice(1).map((time, i) => time - tried[i]!);
  expect(waits.at(-1)!).toBeGreaterThan(waits[0]! * 2);
  room();
  await waitFor(() => consumer.stats.applied === 1, "the kept event applied once there is room", 30_000);
  expect([consumer.stats.deadLettered, consumer.deferredCount(), db.prepare("SELECT count(*) FROM dead_letters").pluck().get()]).toEqual([0, 0, 0]);
  await consumer.close();
  db.close();
});

/**
 * A consumer of the orders stream's "projector" durable, connected through a proxy that drops the pulls
 * `lost` says to: the events of the nats-server 2.9.10 failure renewIfUnreachable mends.
 */
async function withLostPulls(nats: NatsServer, lost: (pull: { noWait: boolean }) => boolean) {
  const pullSubject = `$JS.API.CONSUMER.MSG.NEXT.${streams.orders.name}.projector`;
  const seen = { deletes: 0, probes: 0, naks: 0 };
  const filter = await startNatsPublishFilter({ host: "127.0.0.1", port: nats.port }, (subject, payload) => {
    if (subject === `$JS.API.CONSUMER.DELETE.${streams.orders.name}.projector`) seen.deletes++;
    if (subject.startsWith(`$JS.ACK.${streams.orders.name}.projector.`) && payload === "-NAK") seen.naks++;
    if (subject !== pullSubject) return false;
    const noWait = (JSON.parse(payload) as { no_wait?: boolean }).no_wait === true;
    if (noWait) seen.probes++;
    return lost({ noWait });
  });
  const nc = await connect({ ...nats.connectOptions, servers: filter.url });
  const warnings: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_fields: unknown, msg: string) => void warnings.push(msg)) as typeof logger.warn;
  const consumer = new EventConsumer({
    js: nc.jetstream(),
    db: openDatabase({ file: ":memory:", migrations: INBOX }),
    logger,
    stream: streams.orders.name,
    durable: "projector",
    handle: () => {},
    renew: (probeMs) => renewIfUnreachable(nc, streams.orders.name, "projector", "orderly.orders.>", { ackWaitMs: 1000, probeMs }),
  });
  consumer.start();
  return {
    consumer,
    seen,
    warnings,
    async [Symbol.asyncDispose]() {
      await consumer.close();
      await nc.close();
      await filter[Symbol.asyncDispose]();
    },
  };
}

/** Publishes one event to the orders stream. */
async function publishOne(nc: NatsConnection, id: string): Promise<void> {
  const event = newEvent(id, 1, Date.now(), { case: "orderCancelled", value: {} });
  await nc.jetstream().publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });
}

test("a durable consumer JetStream says exists but whose pulls reach no one (nats-server 2.9.10, its stream made again by two processes at once) is made again where it stood: its events come, none twice", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc: admin, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 1000);
  await publishOne(admin, "first");
  // The pulls reach no one until the durable consumer is deleted (to be made again).
  let lost = false;
  await using projector = await withLostPulls(nats, () => lost && projector.seen.deletes === 0);
  const { consumer } = projector;
  // Applied and acked before the pulls are lost: made again, the consumer starts after it.
  await waitFor(async () => consumer.stats.applied === 1 && (await consumer.lag())?.ackPending === 0, "the first event applied and acked");

  lost = true;
  // Once the pull in hand at the server has expired, no pull waits there.
  await waitFor(async () => (await jsm.consumers.info(streams.orders.name, "projector")).num_waiting === 0, "the last pull that reached the server expired", 15_000);
  await publishOne(admin, "second");
  // Unanswered pulls for 10 s, then the consumer is made again from its ack floor.
  await waitFor(() => consumer.stats.applied === 2, "the second event applied", 30_000);
  expect(consumer.stats).toMatchObject({ applied: 2, skippedDuplicates: 0, deadLettered: 0 });
  expect(projector.warnings).toEqual(["JetStream said this durable consumer exists, but a pull reached nothing: made it again where it stood"]);
  expect((await jsm.consumers.info(streams.orders.name, "projector")).config).toMatchObject({ ack_wait: 1000 * 1_000_000, max_ack_pending: 1000 });
});

test("a durable consumer whose heartbeats stop but whose pull is answered (its server's answers only late, say) is left as it is", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc: admin, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 1000);
  let lost = false;
  // Only the consumer's own pulls are lost; the check's no_wait pull is answered.
  await using projector = await withLostPulls(nats, ({ noWait }) => lost && !noWait);
  await waitFor(async () => (await projector.consumer.lag()) !== undefined, "the consumer reached its durable");
  lost = true;
  await waitFor(async () => (await jsm.consumers.info(streams.orders.name, "projector")).num_waiting === 0, "the last pull that reached the server expired", 15_000);
  await publishOne(admin, "waiting");
  await waitFor(() => projector.seen.probes === 1, "the check's pull", 30_000);
  // It got the event, and put it back.
  await waitFor(() => projector.seen.naks === 1, "the event put back", 15_000);
  expect([projector.seen.deletes, projector.warnings, projector.consumer.stats.applied]).toEqual([0, [], 0]);
  lost = false;
  await waitFor(() => projector.consumer.stats.applied === 1, "the event applied once the pulls reach the server again", 15_000);
});

test("events the handler ignores are acked without being handled or recorded; the others are applied once", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "inventory", "orderly.orders.>", 5000);
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  const events = Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0 ? newEvent(`order-${i}`, 1, Date.now(), { case: "orderCreated", value: {} }) : newEvent(`order-${i}`, 2, Date.now(), { case: "orderCancelled", value: {} }),
  );
  const js = nc.jetstream();
  for (const event of events) await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });

  const handled: string[] = [];
  const consumer = new EventConsumer({
    js,
    db,
    logger: silentLogger(),
    stream: streams.orders.name,
    durable: "inventory",
    handle: (event) => void handled.push(event.eventId),
    ignores: (event) => event.payload.case === "orderCreated",
  });
  consumer.start();
  await waitFor(() => consumer.stats.applied + consumer.stats.ignored === 20, "every event applied or ignored");
  // Acked: none comes back after its ack wait.
  await waitFor(async () => (await consumer.lag())?.ackPending === 0, "every message acked");
  await consumer.close();

  const cancelled = events.filter((e) => e.payload.case === "orderCancelled").map((e) => e.eventId);
  expect(handled.sort()).toEqual([...cancelled].sort());
  expect((db.prepare("SELECT event_id FROM processed_events").pluck().all() as string[]).sort()).toEqual([...cancelled].sort());
  expect(consumer.stats).toMatchObject({ applied: 10, ignored: 10, skippedDuplicates: 0, retried: 0, deadLettered: 0 });
});

test("deliveries that came back because the consumer's own transaction failed do not count toward dead-lettering: only the handler's failures do", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 500);
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  const event = newEvent("order-1", 1, Date.now(), { case: "orderCancelled", value: {} });
  const js = nc.jetstream();
  await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });

  // The first three transactions fail to begin (the database locked, say); then the handler fails once, then succeeds.
  let transactions = 0;
  let handled = 0;
  const consumer = projector(js, db, {
    maxDeliveries: 3,
    handle: () => {
      if (++handled === 1) throw new Error("fails once");
    },
    transactions: {
      run: (_name, fn) => {
        if (++transactions <= 3) throw new Error("SQLITE_BUSY: database is locked");
        return fn();
      },
    },
  });
  consumer.start();
  await waitFor(() => consumer.stats.applied + consumer.stats.deadLettered === 1, "the event applied or dead-lettered");
  await consumer.close();
  // Its fifth delivery: three lost to the transaction, one to the handler, then applied.
  expect({ ...consumer.stats, handled, deadLetters: db.prepare("SELECT count(*) FROM dead_letters").pluck().get() }).toMatchObject({ applied: 1, deadLettered: 0, handled: 2, deadLetters: 0 });
});

test("an event whose handler meets its database full (SQLITE_FULL) is tried again without that counting toward dead-lettering: applied once there is room", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 5000);
  using dir = tempDir("orderly-consumer-full-");
  const { db, write, fill, room } = fillableDatabase(dir.path);
  // The database may not grow: SQLite refuses the handler's write as it refuses one on a full disk.
  fill();
  const event = newEvent("order-1", 1, Date.now(), { case: "orderCancelled", value: {} });
  const js = nc.jetstream();
  await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });

  const failures: string[] = [];
  const consumer = projector(js, db, {
    maxDeliveries: 2,
    handle: (e) => {
      try {
        write(e.eventId);
      } catch (error) {
        failures.push((error as { code: string }).code);
        throw error;
      }
    },
  });
  consumer.start();
  // Twice as many tries as would dead-letter a failing handler.
  await waitFor(() => failures.length >= 4, "the handler's write refused four times");
  expect({ deadLettered: consumer.stats.deadLettered, applied: consumer.stats.applied, codes: [...new Set(failures)] }).toEqual({ deadLettered: 0, applied: 0, codes: ["SQLITE_FULL"] });
  // Room again.
  room();
  await waitFor(() => consumer.stats.applied === 1, "the event applied", 60_000);
  await consumer.close();
  expect({ effects: db.prepare("SELECT event_id FROM effects").pluck().all(), deadLetters: db.prepare("SELECT count(*) FROM dead_letters").pluck().get() }).toEqual({ effects: [event.eventId], deadLetters: 0 });
  db.close();
});

test("a stream made again numbers its messages from 1 again: a message dead-lettered at a sequence already in dead_letters is recorded too", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  const db = openDatabase({ file: ":memory:", migrations: INBOX });
  const js = nc.jetstream();
  const poison = (text: string) => js.publish("orderly.orders.created", new TextEncoder().encode(text));
  /** Dead-letters two messages, "<label> at 1" and "<label> at 2", with a consumer of its own. */
  const deadLetterTwo = async (label: string) => {
    await ensureDurableConsumer(jsm, streams.orders.name, "projector", "orderly.orders.>", 5000);
    const consumer = projector(js, db, { handle: () => {}, maxDeliveries: 1 });
    consumer.start();
    await poison(`${label} at 1`);
    await poison(`${label} at 2`);
    await waitFor(() => consumer.stats.deadLettered === 2, `the ${label} two dead-lettered`);
    await consumer.close();
    return consumer;
  };
  await deadLetterTwo("first");
  // The stream deleted and made again (as a server back with an empty store does): its sequences start over.
  await jsm.streams.delete(streams.orders.name);
  await ensureStreams(jsm);
  const second = await deadLetterTwo("second");

  const letters = db.prepare("SELECT stream_seq AS seq, CAST(payload AS TEXT) AS payload FROM dead_letters ORDER BY id").all();
  expect(letters).toEqual([
    { seq: 1, payload: "first at 1" },
    { seq: 2, payload: "first at 2" },
    { seq: 1, payload: "second at 1" },
    { seq: 2, payload: "second at 2" },
  ]);
  expect(second.deadLetterCount()).toBe(4);
});
