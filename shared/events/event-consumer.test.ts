import { toBinary } from "@bufbuild/protobuf";
import { connect } from "nats";
import { expect, test } from "vitest";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { connectWithStreams, startNats } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { silentLogger } from "../logging/index.js";
import { openDatabase } from "../sqlite/index.js";
import { EventConsumer } from "./event-consumer.js";
import { newEvent } from "./new-event.js";
import { inboxMigration } from "./schema.js";
import { ensureDurableConsumer } from "./stream-setup.js";
import { streams, subjectOf } from "./subjects.js";

test("an event whose ack was lost with the connection is redelivered and skipped: applied once", async () => {
  await using nats = await startNats();
  const logger = silentLogger();
  const db = openDatabase({ file: ":memory:", migrations: [inboxMigration] });
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
