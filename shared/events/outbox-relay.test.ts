import Database from "better-sqlite3";
import { expect, test } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StorageType, connect } from "nats";
import { connectWithStreams, startNats, startNatsDenyingInbox } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { startTcpProxy } from "../../test/helpers/tcp-proxy.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { createLogger, silentLogger } from "../logging/index.js";
import { openDatabase, type Db } from "../sqlite/index.js";
import { fromBinary } from "@bufbuild/protobuf";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { newEvent } from "./new-event.js";
import { Outbox } from "./outbox.js";
import { OutboxRelay } from "./outbox-relay.js";
import { connectNats } from "./nats-connection.js";
import { defaultStreamSettings, ensureStreams } from "./stream-setup.js";
import { outboxMigration, outboxProgressMigration, outboxRetryDueMigration, outboxTraceMigration, unpublishedRows } from "./schema.js";
import { streams } from "./subjects.js";

const HOUR = 3_600_000;
/** The outbox's tables, as the services migrate them. */
const OUTBOX_MIGRATIONS = [outboxMigration, outboxTraceMigration, outboxProgressMigration, outboxRetryDueMigration];

/** An outbox holding row n (from 1) as event-<n> with payload "payload <n>", on the subject and with the write time `row(n)` gives. */
function outboxOf(count: number, row: (n: number) => { subject: string; createTime: number }): Db {
  const db = openDatabase({ file: ":memory:", migrations: OUTBOX_MIGRATIONS });
  const append = db.prepare("INSERT INTO outbox (event_id, subject, payload, create_time) VALUES (?, ?, ?, ?)");
  db.transaction(() => {
    for (let n = 1; n <= count; n++) {
      const { subject, createTime } = row(n);
      append.run(`event-${n}`, subject, Buffer.from(`payload ${n}`), createTime);
    }
  })();
  return db;
}

/** An outbox to which `append(from, count)` adds restock events of SKU-<from>… in one transaction each; `appended` lists their ids in order. */
function restockOutbox(): { db: Db; outbox: Outbox; appended: string[]; append: (from: number, count: number) => void } {
  const db = openDatabase({ file: ":memory:", migrations: OUTBOX_MIGRATIONS });
  const outbox = new Outbox(db);
  const appended: string[] = [];
  const append = (from: number, count: number) =>
    db.transaction(() => {
      for (let n = from; n < from + count; n++) {
        const event = newEvent(`SKU-${n}`, n, 1_000, { case: "stockRestocked", value: { item: { sku: `SKU-${n}`, available: n }, quantity: n } });
        outbox.append(event);
        appended.push(event.eventId);
      }
    })();
  return { db, outbox, appended, append };
}

test("the relay publishes the outbox in order, resumes after what it recorded, and prunes only old published rows", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  let now = 10 * HOUR;
  // 2,500 rows written two hours ago, then 100 just now.
  const db = outboxOf(2600, (n) => ({ subject: "orderly.orders.created", createTime: n <= 2500 ? now - 2 * HOUR : now }));

  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), retentionMs: HOUR, clock: () => now });
  relay.start();
  await waitFor(() => unpublishedRows(db) === 0, "the outbox published");
  await relay.close();
  const stream = await jsm.streams.info(streams.orders.name);
  expect(stream.state.messages).toBe(2600);
  const sample = await jsm.streams.getMessage(streams.orders.name, { seq: 1234 });
  expect([new TextDecoder().decode(sample.data), sample.header.get("Nats-Msg-Id")]).toEqual(["payload 1234", "event-1234"]);

  // A new relay on the same database starts after the last batch recorded: nothing is published twice.
  now += 2 * 60_000;
  const again = new OutboxRelay({ db, nc, logger: silentLogger(), retentionMs: HOUR, clock: () => now });
  again.start();
  // Its first pass prunes the published rows older than the retention: the 2,500 old ones, not the 100 recent.
  await waitFor(() => db.prepare("SELECT count(*) FROM outbox").pluck().get() === 100, "the old published rows pruned");
  await again.close();
  expect([again.stats().published, (await jsm.streams.info(streams.orders.name)).state.messages]).toEqual([0, 2600]);
  expect(db.prepare("SELECT min(seq) FROM outbox").pluck().get()).toBe(2501);
});

test("an event JetStream refuses is set aside and retried without holding up the rest, and published once it can be", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  let now = 10 * HOUR;
  // Row 3 goes to a subject no stream takes (yet): JetStream answers "no responders" for it alone.
  const db = outboxOf(600, (n) => ({ subject: n === 3 ? "orderly.later.created" : "orderly.orders.created", createTime: now - 2 * HOUR }));
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), retentionMs: HOUR, clock: () => now });
  relay.start();
  await waitFor(() => relay.stats().published === 599, "every other event published");
  expect((await jsm.streams.info(streams.orders.name)).state.messages).toBe(599);
  expect(db.prepare("SELECT seq, failures FROM outbox_retry").all()).toEqual([{ seq: 3, failures: 1 }]);
  expect(unpublishedRows(db)).toBe(1);

  // Pruning keeps the row set aside, however old.
  now += 2 * 60_000;
  relay.notify();
  await waitFor(() => db.prepare("SELECT count(*) FROM outbox").pluck().get() === 1, "the published rows pruned");

  // Once a stream takes the subject, the next retry publishes it.
  await jsm.streams.add({ name: "LATER", subjects: ["orderly.later.>"] });
  now += 60_000;
  relay.notify();
  await waitFor(() => unpublishedRows(db) === 0, "the set-aside event published");
  await relay.close();
  const later = await jsm.streams.getMessage("LATER", { seq: 1 });
  expect([new TextDecoder().decode(later.data), later.header.get("Nats-Msg-Id"), relay.stats().published]).toEqual(["payload 3", "event-3", 600]);
});

test("events the outbox remembers are published as appended, without reading them back; rolled-back and forgotten ones come from the table", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  const db = openDatabase({ file: ":memory:", migrations: OUTBOX_MIGRATIONS });
  // Remembers at most 50 events.
  const outbox = new Outbox(db, { rememberEvents: 50 });
  const restocked = (n: number) => newEvent(`SKU-${n}`, n, 1_000, { case: "stockRestocked", value: { item: { sku: `SKU-${n}`, available: n }, quantity: n } });
  // An append whose transaction rolls back has no row: it is remembered, never published, and pushed out by newer ones.
  const rolledBack = restocked(999);
  expect(() =>
    db.transaction(() => {
      outbox.append(rolledBack);
      throw new Error("the change failed");
    })(),
  ).toThrow("the change failed");
  // Of the 120 appended next, the first 70 are forgotten.
  const appended = Array.from({ length: 120 }, (_, i) => restocked(i + 1));
  db.transaction(() => appended.forEach((event) => outbox.append(event)))();
  // Change every stored payload behind the outbox's back: what the relay publishes shows where it read each event from.
  db.prepare("UPDATE outbox SET payload = CAST('from the table' AS BLOB)").run();

  // Batches of 10: a batch is taken from memory when the outbox remembers all of it.
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), outbox, batchSize: 10 });
  relay.start();
  await waitFor(() => unpublishedRows(db) === 0, "the outbox published");
  await relay.close();
  const stream = await jsm.streams.info(streams.inventory.name);
  expect(stream.state.messages).toBe(120);
  const published = await Promise.all(Array.from({ length: 120 }, (_, i) => jsm.streams.getMessage(streams.inventory.name, { seq: i + 1 })));
  expect(published.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(appended.map((e) => e.eventId));
  const bodies = published.map((m) => (new TextDecoder().decode(m.data) === "from the table" ? "table" : fromBinary(EventSchema, m.data).eventId));
  expect(bodies).toEqual(appended.map((e, i) => (i < 70 ? "table" : e.eventId)));
  // What was published is forgotten.
  expect([rolledBack, ...appended].map((e) => outbox.take(e.eventId)).filter(Boolean)).toEqual([]);
});

test("a publish in flight when NATS goes down fails at once; writes during the outage wait, and are published in order as soon as NATS is back", async () => {
  await using nats = await startNats();
  // The services' own connection settings (they keep reconnecting).
  const nc = await connectNats(nats.url, "relay-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  await ensureStreams(await nc.jetstreamManager());
  const { db, outbox, appended, append } = restockOutbox();
  // Waiting a minute for a PubAck, or after a failed pass: this test ends long before either.
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), outbox, publishTimeoutMs: 60_000, backoff: { initialMs: 60_000, maxMs: 60_000 } });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  append(1, 10);
  await waitFor(() => relay.stats().published === 10, "the first events published");

  // A server that stops answering, with one event published to it (taken from the outbox's memory)...
  nats.child().kill("SIGSTOP");
  await waitFor(() => readFileSync(`/proc/${nats.child().pid}/stat`, "utf8").split(") ")[1]?.startsWith("T"), "nats-server stopped");
  append(11, 1);
  await waitFor(() => outbox.rememberedEvents === 0, "event 11 published");
  // ...then gone: the publish fails when the connection drops, not at its deadline.
  await nats.kill("SIGKILL");
  await waitFor(() => relay.stats().failures === 1, "the pass failed");
  // Writes during the outage (they do not start passes bound to fail).
  for (let n = 12; n < 600; n += 50) append(n, 50);

  await nats.restart();
  // Back at once: not after the minute of back-off.
  await waitFor(() => unpublishedRows(db) === 0, "the events written during the outage published", 20_000);
  expect(relay.stats()).toMatchObject({ published: 611, failures: 1 });
  const jsm = await nc.jetstreamManager();
  expect((await jsm.streams.info(streams.inventory.name)).state.messages).toBe(611);
  const stored = await Promise.all(appended.map((_, i) => jsm.streams.getMessage(streams.inventory.name, { seq: i + 1 })));
  expect(stored.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(appended);
});

test("a relay closed while nats-server hangs cuts its batch short without calling it a failure: nothing set aside, no restore asked; the next relay publishes the rest, in order", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "relay-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  await ensureStreams(await nc.jetstreamManager());
  const { db, outbox, appended, append } = restockOutbox();
  const lines: { msg: string }[] = [];
  const logger = createLogger("order", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) });
  let restores = 0;
  const relay = new OutboxRelay({ db, nc, logger, outbox, publishTimeoutMs: 60_000, onPublishFailed: () => restores++ });
  relay.start();
  append(1, 5);
  await waitFor(() => relay.stats().published === 5, "the first events published");
  nats.child().kill("SIGSTOP");
  try {
    await waitFor(() => readFileSync(`/proc/${nats.child().pid}/stat`, "utf8").split(") ")[1]?.startsWith("T"), "nats-server stopped");
    append(6, 3);
    await waitFor(() => outbox.rememberedEvents === 0, "events 6-8 sent, their PubAcks awaited");
    // The service stopping: the batch's PubAcks do not come, and the close gives them up.
    await relay.close();
  } finally {
    nats.child().kill("SIGCONT");
  }
  expect({
    setAside: db.prepare("SELECT count(*) FROM outbox_retry").pluck().get(),
    restores,
    failuresSaid: lines.filter((line) => /publish failed|refused/.test(line.msg)).map((line) => line.msg),
    unpublished: unpublishedRows(db),
  }).toEqual({ setAside: 0, restores: 0, failuresSaid: [], unpublished: 3 });

  // The next start publishes them, in order (JetStream drops any it had stored, by their ids).
  const next = new OutboxRelay({ db, nc, logger: silentLogger(), outbox: new Outbox(db) });
  await using _next = { [Symbol.asyncDispose]: () => next.close() };
  next.start();
  await waitFor(() => unpublishedRows(db) === 0, "the rest published", 20_000);
  const jsm = await nc.jetstreamManager();
  const count = (await jsm.streams.info(streams.inventory.name)).state.messages;
  const stored = await Promise.all(Array.from({ length: count }, (_, i) => jsm.streams.getMessage(streams.inventory.name, { seq: i + 1 })));
  expect(stored.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(appended);
});

test("while a full batch is in flight the next is read ahead, and dropped when the batch is refused as a whole: nothing is skipped or reordered", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  // The first batch of 10 goes to a subject no stream takes yet: JetStream refuses all of it, again and again.
  const db = outboxOf(30, (n) => ({ subject: n <= 10 ? "orderly.later.created" : "orderly.orders.created", createTime: 1_000 }));
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), batchSize: 10, backoff: { initialMs: 20, maxMs: 100 } });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  await waitFor(() => relay.stats().failures >= 3, "the first batch refused a few times");
  // The batch read ahead each time (rows 11-20) was not published past the refused one.
  expect([relay.stats().published, (await jsm.streams.info(streams.orders.name)).state.messages]).toEqual([0, 0]);

  await jsm.streams.add({ name: "LATER", subjects: ["orderly.later.>"] });
  await waitFor(() => unpublishedRows(db) === 0, "the outbox published");
  const ids = async (stream: string, count: number) =>
    (await Promise.all(Array.from({ length: count }, (_, i) => jsm.streams.getMessage(stream, { seq: i + 1 })))).map((m) => m.header.get("Nats-Msg-Id"));
  expect(await ids("LATER", 10)).toEqual(Array.from({ length: 10 }, (_, i) => `event-${i + 1}`));
  expect(await ids(streams.orders.name, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `event-${i + 11}`));
  expect(relay.stats().published).toBe(30);
});

test("a full stream refuses new events instead of dropping its oldest: they wait in the outbox, and are published once it has room", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "relay-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  // Room for 300 events.
  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 300 });
  const now = 10 * HOUR;
  const db = outboxOf(2000, () => ({ subject: "orderly.orders.created", createTime: now }));
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), retentionMs: HOUR, clock: () => now, backoff: { initialMs: 20, maxMs: 200 } });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  await waitFor(() => relay.stats().failures >= 3, "the relay refused by the full stream, and retrying");
  const full = (await jsm.streams.info(streams.orders.name)).state;
  // Nothing dropped: the stream still starts at the first event; the rest wait in the outbox, none set aside.
  expect({ first: full.first_seq, messages: full.messages }).toEqual({ first: 1, messages: 300 });
  expect(unpublishedRows(db)).toBe(2000 - full.messages);
  expect(db.prepare("SELECT count(*) FROM outbox_retry").pluck().get()).toBe(0);

  // A process started with a smaller limit does not shrink the stream (JetStream would drop its oldest events to fit).
  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 100 });
  expect((await jsm.streams.info(streams.orders.name)).state).toMatchObject({ first_seq: 1, messages: full.messages });

  // With room (as after raising STREAM_MAX_EVENTS and restarting a service), every event is published once, in order.
  await ensureStreams(jsm);
  await waitFor(() => unpublishedRows(db) === 0, "the waiting events published");
  expect((await jsm.streams.info(streams.orders.name)).state).toMatchObject({ first_seq: 1, messages: 2000 });
  const stored = await Promise.all(Array.from({ length: 2000 }, (_, i) => jsm.streams.getMessage(streams.orders.name, { seq: i + 1 })));
  expect(stored.map((m) => new TextDecoder().decode(m.data))).toEqual(Array.from({ length: 2000 }, (_, i) => `payload ${i + 1}`));
});

test("JetStream's storage used up (the server's max_file_store) is told apart from a full stream: events wait in the outbox, no restore is asked, and once there is room each is published once, in order", async () => {
  using dir = tempDir("orderly-nats-conf-");
  const configFile = join(dir.path, "nats.conf");
  writeFileSync(configFile, "jetstream { max_file_store: 1MB }\n");
  await using nats = await startNats({ configFile });
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  // Another stream takes the server's storage, as another tenant's would.
  await jsm.streams.add({ name: "BALLAST", subjects: ["ballast.>"], storage: StorageType.File });
  const js = nc.jetstream();
  for (let kb = 0; ; kb++) {
    if (kb > 2000) throw new Error("the server took 2 MB past its 1 MB max_file_store");
    const refused = await js.publish("ballast.x", new Uint8Array(1000)).then(() => false, () => true);
    if (refused) break;
  }
  const { db, outbox, appended, append } = restockOutbox();
  const lines: { level: number; msg: string }[] = [];
  const logger = createLogger("inventory", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  let restores = 0;
  const relay = new OutboxRelay({ db, nc, logger, outbox, backoff: { initialMs: 20, maxMs: 200 }, onPublishFailed: () => restores++ });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  append(1, 300);
  await waitFor(() => relay.stats().failures >= 3, "the relay refused for want of storage, and retrying");
  expect({
    unpublished: unpublishedRows(db),
    setAside: db.prepare("SELECT count(*) FROM outbox_retry").pluck().get(),
    restores,
    said: [...new Set(lines.filter((line) => line.level >= 40).map((line) => line.msg))],
  }).toEqual({
    unpublished: 300,
    setAside: 0,
    restores: 0,
    said: ["JetStream's storage is used up (the server's max_file_store or the account's limit; not STREAM_MAX_EVENTS): events wait in the outbox until it has room"],
  });

  await jsm.streams.delete("BALLAST");
  await waitFor(() => unpublishedRows(db) === 0, "the waiting events published once there is room");
  const count = (await jsm.streams.info(streams.inventory.name)).state.messages;
  const stored = await Promise.all(Array.from({ length: count }, (_, i) => jsm.streams.getMessage(streams.inventory.name, { seq: i + 1 })));
  expect(stored.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(appended);
  expect(restores).toBe(0);
});

test("while the server refuses the relay's PubAck inbox, its passes send nothing and ask for no stream setup (NATS would refuse that too); once a reload allows the inbox, every event is published, once, in order", async () => {
  using dir = tempDir("orderly-nats-conf-");
  await using nats = await startNatsDenyingInbox(dir.path, "inventory", "inv-secret");
  await using operator = await connectWithStreams(nats);
  const nc = await connectNats(nats.url, "relay-test", silentLogger(), { user: "inventory", pass: "inv-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const { db, outbox, appended, append } = restockOutbox();
  let restores = 0;
  const relay = new OutboxRelay({ db, nc, logger: silentLogger(), outbox, backoff: { initialMs: 20, maxMs: 200 }, onPublishFailed: () => restores++ });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  append(1, 20);
  // Publishes sent before the refusal came fail as any unanswered publish does (a restore asked for them, at most once);
  // the passes after it send nothing, and ask for none.
  await waitFor(() => relay.stats().failures >= 6, "passes failing while the inbox is refused", 20_000);
  const asked = restores;
  expect(asked).toBeLessThanOrEqual(1);
  nats.allowInbox();
  await waitFor(() => unpublishedRows(db) === 0, "the events published once the inbox is allowed", 30_000);
  const count = (await operator.jsm.streams.info(streams.inventory.name)).state.messages;
  const stored = await Promise.all(Array.from({ length: count }, (_, i) => operator.jsm.streams.getMessage(streams.inventory.name, { seq: i + 1 })));
  expect(stored.map((m) => m.header.get("Nats-Msg-Id"))).toEqual(appended);
  expect(restores).toBe(asked);
});

test("a stream deleted under the relay: a pass that publishes nothing says so (onPublishFailed), and once the stream is made again every event is published, once", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  // A core subscriber on the stream's subjects (as the gateway's cache is): JetStream's publish requests get no 503, only no answer.
  const listener = nc.subscribe("orderly.>");
  const db = outboxOf(10, () => ({ subject: "orderly.orders.created", createTime: Date.now() }));
  let failedPasses = 0;
  const relay = new OutboxRelay({
    db,
    nc,
    logger: silentLogger(),
    publishTimeoutMs: 200,
    backoff: { initialMs: 20, maxMs: 100 },
    onPublishFailed: () => {
      if (++failedPasses === 1) void ensureStreams(jsm);
    },
  });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  await jsm.streams.delete(streams.orders.name);
  relay.start();
  await waitFor(() => unpublishedRows(db) === 0, "the outbox published into the stream made again");
  listener.unsubscribe();
  expect(failedPasses).toBeGreaterThanOrEqual(1);
  expect((await jsm.streams.info(streams.orders.name)).state.messages).toBe(10);
});

test("passes failing with NATS connected are said at error once they have for stallMs (JetStream not answering, which no health check sees), and their end at info", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  // The stream gone, and a core subscriber on its subjects: publishes get no answer at all, as from a stuck nats-server.
  await jsm.streams.delete(streams.orders.name);
  const listener = nc.subscribe("orderly.>");
  const lines: { level: number; msg: string; backlog?: number }[] = [];
  const logger = createLogger("order", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const db = outboxOf(5, () => ({ subject: "orderly.orders.created", createTime: Date.now() }));
  const relay = new OutboxRelay({ db, nc, logger, publishTimeoutMs: 100, backoff: { initialMs: 20, maxMs: 50 }, stallMs: 400 });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  const stalled = await waitFor(() => lines.find((line) => line.level === 50), "the stall said at error");
  expect(stalled).toMatchObject({ backlog: 5 });
  expect(stalled!.msg).toMatch(/^JetStream has taken no event for \d+ s while NATS takes connections/);

  listener.unsubscribe();
  await ensureStreams(jsm);
  await waitFor(() => unpublishedRows(db) === 0, "the outbox published once JetStream answers");
  await waitFor(() => lines.some((line) => line.msg === "JetStream takes events again"), "the end of the stall said");
  expect(lines.filter((line) => line.level === 50)).toHaveLength(1);
});

/**
 * A relay (stall reported after `stallMs`) of five events that JetStream never answers (no stream, and a core subscriber
 * on its subjects), connected to a nats-server through a TCP proxy a test can cut, reconnecting every 20 ms; its log lines.
 */
async function stallingRelay(stallMs: number) {
  const nats = await startNats();
  const client = await connectWithStreams(nats);
  await client.jsm.streams.delete(streams.orders.name);
  const { hostname, port } = new URL(nats.connectOptions.servers);
  const proxy = await startTcpProxy({ host: hostname, port: Number(port) });
  const nc = await connect({ ...nats.connectOptions, servers: `nats://${proxy.address}`, reconnectTimeWait: 20, maxReconnectAttempts: -1 });
  nc.subscribe("orderly.>");
  const lines: { level: number; msg: string }[] = [];
  const logger = createLogger("order", "info", { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const db = outboxOf(5, () => ({ subject: "orderly.orders.created", createTime: Date.now() }));
  const relay = new OutboxRelay({ db, nc, logger, publishTimeoutMs: 100, backoff: { initialMs: 20, maxMs: 50 }, stallMs });
  relay.start();
  return {
    proxy,
    nc,
    relay,
    lines,
    async [Symbol.asyncDispose]() {
      await relay.close();
      await nc.close();
      await proxy.close();
      await client[Symbol.asyncDispose]();
      await nats[Symbol.asyncDispose]();
    },
  };
}

test("a stall is said at error also when the connection keeps dropping meanwhile (a hung nats-server's clients reconnect every few seconds)", async () => {
  await using stalling = await stallingRelay(600);
  const { proxy, lines } = stalling;
  // The connection reset every 250 ms, well within the stall's 600.
  const resets = setInterval(() => {
    proxy.reset();
    setTimeout(() => proxy.pass(), 30);
  }, 250);
  try {
    const stalled = await waitFor(() => lines.find((line) => line.level === 50), "the stall said at error", 10_000);
    expect(stalled!.msg).toMatch(/^JetStream has taken no event for \d+ s/);
  } finally {
    clearInterval(resets);
  }
});

test("an outage of NATS between failing passes does not count toward a stall: only the time JetStream failed with NATS connected does", async () => {
  await using stalling = await stallingRelay(1500);
  const { proxy, nc, relay, lines } = stalling;
  // Failing with NATS connected a little while, then NATS unreachable for 3 s (a fault of that length: longer than the
  // stall, but not failing time).
  await waitFor(() => relay.stats().failures >= 2, "two failed passes");
  const statuses = nc.status();
  proxy.reset();
  for await (const status of statuses) if (status.type === "disconnect") break;
  await new Promise((resolve) => setTimeout(resolve, 3000));
  proxy.pass();
  // Connected again, JetStream still answers nothing: a few more failed passes, a few hundred ms, are no stall yet.
  const before = relay.stats().failures;
  await waitFor(() => relay.stats().failures >= before + 3, "three failed passes after the outage");
  expect(lines.filter((line) => line.level === 50)).toEqual([]);
  // Still failing with NATS connected, it is said in the end.
  await waitFor(() => lines.some((line) => line.level === 50), "the stall said once it has failed 1.5 s connected", 10_000);
});

test("a prune that fails (the database's write lock held past the busy timeout) is logged and tried again later; the relay goes on publishing", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  using dir = tempDir("orderly-relay-prune-");
  const file = join(dir.path, "outbox.db");
  const db = openDatabase({ file, migrations: OUTBOX_MIGRATIONS, busyTimeoutMs: 50 });
  const outbox = new Outbox(db);
  // Another connection holds the write lock (an operator's sqlite3 session mid-transaction, say) through the relay's first
  // pass, which prunes.
  const other = new Database(file);
  other.exec("BEGIN IMMEDIATE");
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const relay = new OutboxRelay({ db, nc: client.nc, logger, outbox });
  relay.start();
  await waitFor(() => lines.some((line) => line.msg === "pruning the published outbox rows failed; tried again in a minute"), "the failed prune logged");
  other.exec("COMMIT");
  other.close();

  db.transaction(() => outbox.append(newEvent("SKU-1", 1, Date.now(), { case: "stockRestocked", value: { item: { sku: "SKU-1", available: 1 }, quantity: 1 } })))();
  await waitFor(async () => (await client.jsm.streams.info(streams.inventory.name)).state.messages === 1, "the event appended after the failed prune published");
  await relay.close();
  expect(relay.stats()).toMatchObject({ published: 1, failures: 0 });
  db.close();
});

test("a row set aside while the wall clock ran ahead (a day, say) is published again once the clock is set right, not a day later", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const now = 10 * HOUR;
  const db = outboxOf(3, () => ({ subject: "orderly.orders.created", createTime: now }));
  // Published through 3 but for row 2, refused and set aside for a second by a clock a day ahead.
  db.prepare("INSERT INTO outbox_batches (through_seq, events, publish_time) VALUES (3, 3, ?)").run(now + 24 * HOUR);
  db.prepare("INSERT INTO outbox_retry (seq, failures, last_error, next_attempt) VALUES (2, 1, 'no PubAck', ?)").run(now + 24 * HOUR + 1000);
  expect(unpublishedRows(db)).toBe(1);
  const relay = new OutboxRelay({ db, nc: client.nc, logger: silentLogger(), retentionMs: HOUR, clock: () => now });
  await using _relay = { [Symbol.asyncDispose]: () => relay.close() };
  relay.start();
  await waitFor(() => unpublishedRows(db) === 0, "the row set aside published again");
  const stored = await client.jsm.streams.getMessage(streams.orders.name, { seq: 1 });
  expect(new TextDecoder().decode(stored.data)).toBe("payload 2");
});
