// "A lost read model rebuilds itself" (README): the query service, started on a query.db that records no event, replays
// its streams when its durable consumers were delivered events, judged by what was delivered and not by the ack floor.
import { toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { join } from "node:path";
import { expect, test } from "vitest";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderStatus } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { ensureDurableConsumer, newEvent, startEventRuntime, subjectOf } from "../../shared/events/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { connectWithStreams, startNats } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { projectionConsumers } from "./projection-consumers.js";
import { Projector } from "./projector.js";
import { queryMigrations } from "./schema.js";
import { ViewChanges } from "./view-changes.js";

test("a query.db lost while the durable's first event is still unacked (later ones acked) is rebuilt with every event", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  await ensureDurableConsumer(jsm, "ORDERS", "query-orders", "orderly.orders.>", 5000);
  const ms = Date.UTC(2026, 11, 5, 12);
  const js = nc.jetstream();
  for (const id of ["ord_1", "ord_2", "ord_3"]) {
    const order = { id, customerId: "c", status: OrderStatus.CONFIRMED, items: [], totalMinor: 0n, currencyCode: "USD", version: 2n, createTime: timestampFromMs(ms), updateTime: timestampFromMs(ms) };
    const event = newEvent(id, 2, ms, { case: "orderConfirmed", value: { order } });
    await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });
  }
  // The first query service took all three: the first is put back for later (it failed), the other two were applied and acked.
  const consumer = await js.consumers.get("ORDERS", "query-orders");
  const batch = await consumer.fetch({ max_messages: 3, expires: 2000 });
  for await (const msg of batch) {
    if (msg.info.streamSequence === 1) msg.nak(120_000);
    else msg.ack();
    if (msg.info.streamSequence === 3) break;
  }
  // nats-server takes acks in on a queue of the consumer's own: the info asked right after them may not count them yet.
  const info = await waitFor(async () => {
    const now = await jsm.consumers.info("ORDERS", "query-orders");
    return now.num_ack_pending === 1 ? now : undefined;
  }, "the server to count the two acks");
  expect({ floor: info.ack_floor.stream_seq, delivered: info.delivered.stream_seq, ackPending: info.num_ack_pending }).toEqual({ floor: 0, delivered: 3, ackPending: 1 });

  // Then its query.db was lost: a new one, and the query service starts on it.
  using temp = tempDir("orderly-lost-read-model-");
  const db = openDatabase({ file: join(temp.path, "query.db"), migrations: queryMigrations });
  const logger = silentLogger();
  const runtime = startEventRuntime({ servers: nats.url, name: "query", logger, db, consumers: projectionConsumers("query", new Projector(db, logger), new ViewChanges()), retryDelayMs: 50 });
  try {
    await runtime.ready;
    const views = () => db.prepare("SELECT id FROM order_views ORDER BY id").pluck().all();
    // ord_2 and ord_3 were taken by the durable: the new read model must get them back (ord_1 comes after its nak delay).
    await waitFor(() => views().includes("ord_2") && views().includes("ord_3"), "the events the durable had acked, replayed into the new read model", 8000);
  } finally {
    await runtime.close();
    db.close();
  }
});

test("a stream purged of what its durable had not yet been delivered is not replayed at every start (nats-server puts a new durable at the sequence before its first message)", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  const js = nc.jetstream();
  const ms = Date.UTC(2026, 11, 5, 12);
  for (const id of ["ord_1", "ord_2"]) {
    const order = { id, customerId: "c", status: OrderStatus.CONFIRMED, items: [], totalMinor: 0n, currencyCode: "USD", version: 2n, createTime: timestampFromMs(ms), updateTime: timestampFromMs(ms) };
    const event = newEvent(id, 2, ms, { case: "orderConfirmed", value: { order } });
    await js.publish(subjectOf(event), toBinary(EventSchema, event), { msgID: event.eventId });
  }
  await jsm.streams.purge("ORDERS");
  using temp = tempDir("orderly-lost-read-model-");
  const warnings: string[] = [];
  for (let start = 0; start < 3; start++) {
    const db = openDatabase({ file: join(temp.path, "query.db"), migrations: queryMigrations });
    const logger = silentLogger();
    logger.warn = ((_: unknown, message: string) => void warnings.push(message)) as typeof logger.warn;
    const runtime = startEventRuntime({ servers: nats.url, name: "query", logger, db, consumers: projectionConsumers("query", new Projector(db, logger), new ViewChanges()) });
    try {
      await runtime.ready;
      // The durable, made at the first start, stands after the purged messages: nothing was delivered to it.
      expect((await jsm.consumers.info("ORDERS", "query-orders")).delivered).toMatchObject({ consumer_seq: 0, stream_seq: 2 });
    } finally {
      await runtime.close();
      db.close();
    }
  }
  expect(warnings.filter((message) => message.includes("replaying"))).toEqual([]);
});
