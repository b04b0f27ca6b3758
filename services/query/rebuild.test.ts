import Database from "better-sqlite3";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { expect, test } from "vitest";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { consumerNames, streams } from "../../shared/events/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { futureEvent } from "../../test/helpers/events.js";
import { silentLogger } from "../../shared/logging/index.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { connectWithStreams, startNats } from "../../test/helpers/nats.js";
import { dumpReadModels } from "./read-store.js";
import { Projector } from "./projector.js";
import { compareWithLive, replayStreams } from "./rebuild.js";
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

test("comparing with the live read models only reads them: a file of an older schema version is not compared, and stays at its version", () => {
  using temp = tempDir("orderly-rebuild-compare-");
  const file = join(temp.path, "query.db");
  openDatabase({ file, migrations: queryMigrations.slice(0, 4) }).close();
  const rebuilt = openDatabase({ file: ":memory:", migrations: queryMigrations });
  expect(compareWithLive(file, dumpReadModels(rebuilt)).says).toBe(
    `the live read models (${file}) are at schema version 4 and this code's at ${queryMigrations.length}: not compared`,
  );
  const live = openDatabase({ file, migrations: queryMigrations.slice(0, 4) });
  expect(live.pragma("user_version", { simple: true })).toBe(4);
  live.close();

  // What only the live side holds is counted at its version too: a replace after an upgrade is guarded as well.
  const older = new Database(file);
  older.prepare("INSERT INTO stock_levels (sku, name, available, reserved, version, update_time) VALUES ('OLD-1', 'Old', 1, 0, 3, 0)").run();
  older.close();
  expect(compareWithLive(file, dumpReadModels(rebuilt)).onlyLive).toEqual({ orders: 0, stockLevels: 1 });
  const again = new Database(file);
  again.prepare("DELETE FROM stock_levels").run();
  again.close();

  // At this code's version, the same read models compare equal.
  openDatabase({ file, migrations: queryMigrations }).close();
  expect(compareWithLive(file, dumpReadModels(rebuilt)).says).toBe("the rebuilt read models equal the live ones");
  rebuilt.close();
});

test("comparing with the live read models counts the orders and stock levels only they hold, or hold at a newer version: what a replace would lose", () => {
  using temp = tempDir("orderly-rebuild-compare-");
  const file = join(temp.path, "query.db");
  const restocked = (sku: string, version: bigint) =>
    create(EventSchema, {
      eventId: `evt-${sku}-${version}`,
      aggregateId: sku,
      aggregateVersion: version,
      payload: { case: "stockRestocked", value: { item: { sku, name: sku, available: Number(version), reserved: 0, version }, quantity: 1 } },
    });
  const live = openDatabase({ file, migrations: queryMigrations });
  const rebuilt = openDatabase({ file: ":memory:", migrations: queryMigrations });
  const [liveProjector, rebuiltProjector] = [new Projector(live, silentLogger()), new Projector(rebuilt, silentLogger())];
  for (const event of [restocked("A", 1n), restocked("A", 2n), restocked("B", 1n), restocked("C", 1n)]) liveProjector.handle(event, "orderly.inventory.restocked");
  // The rebuilt side lacks B, holds A at an older version, and C as it is; it holds D, which the live side lacks (catching up).
  for (const event of [restocked("A", 1n), restocked("C", 1n), restocked("D", 1n)]) rebuiltProjector.handle(event, "orderly.inventory.restocked");
  live.close();
  const comparison = compareWithLive(file, dumpReadModels(rebuilt));
  expect(comparison.onlyLive).toEqual({ orders: 0, stockLevels: 2 });
  expect(comparison.says).toMatch(/^the rebuilt read models lack 0 order\(s\) and 2 stock level\(s\) the live ones hold \(or hold them at an older version\)/);
  rebuilt.close();
});
