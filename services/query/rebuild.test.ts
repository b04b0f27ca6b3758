import { create, toBinary } from "@bufbuild/protobuf";
import { expect, test } from "vitest";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { consumerNames, streams } from "../../shared/events/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { futureEvent } from "../../test/helpers/events.js";
import { connectWithStreams, startNats } from "../../test/helpers/nats.js";
import { dumpReadModels } from "./read-store.js";
import { replayStreams } from "./rebuild.js";
import { queryMigrations } from "./schema.js";

test("a rebuild keeps an event of a payload type this code does not know (a newer version's) in deferred_events, under the live consumer's name, for an upgraded query service to apply", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const js = client.nc.jetstream();
  const future = futureEvent("future-1");
  await js.publish("orderly.orders.cancelled", future.data, { msgID: future.event.eventId });
  const item = { sku: "R-1", name: "R", available: 5, reserved: 0, version: 1n };
  const restocked = create(EventSchema, { eventId: "evt-R-1-1", aggregateId: "R-1", aggregateVersion: 1n, payload: { case: "stockRestocked", value: { item, quantity: 5 } } });
  await js.publish("orderly.inventory.restocked", toBinary(EventSchema, restocked), { msgID: restocked.eventId });

  const db = openDatabase({ file: ":memory:", migrations: queryMigrations });
  expect(await replayStreams(nats.url, db, "query")).toEqual({ [streams.orders.name]: 0, [streams.inventory.name]: 1 });
  expect(db.prepare("SELECT consumer, event_id, stream, stream_seq, subject, payload FROM deferred_events").all()).toEqual([
    { consumer: consumerNames.projection("query", "orders"), event_id: future.event.eventId, stream: streams.orders.name, stream_seq: 1, subject: "orderly.orders.cancelled", payload: Buffer.from(future.data) },
  ]);
  expect(dumpReadModels(db).stock_levels).toHaveLength(1);
  db.close();
});
