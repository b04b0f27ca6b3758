import type { JsMsg } from "nats";
import { expect, test } from "vitest";
import { connectWithStreams, startNats } from "../../test/helpers/nats.js";
import { openDatabase } from "../sqlite/index.js";
import { DeferredEvents } from "./deferred-events.js";
import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration } from "./schema.js";
import { streams } from "./subjects.js";

test("kept events are kept once each, read back in the order the stream stored them across pages, counted, and forgotten one by one", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const js = client.nc.jetstream();
  // 450 messages: more than two pages.
  const count = 450;
  await Promise.all(Array.from({ length: count }, (_, i) => js.publish("orderly.orders.created", new Uint8Array([i % 256]), { msgID: `m-${i}` })));
  const consumer = await js.consumers.get(streams.orders.name);
  const delivered: JsMsg[] = [];
  for await (const msg of await consumer.fetch({ max_messages: count, expires: 5000 })) delivered.push(msg);
  expect(delivered).toHaveLength(count);

  const db = openDatabase({ file: ":memory:", migrations: [inboxMigration, deadLetterTimeMigration, deferredEventsMigration] });
  const kept = new DeferredEvents(db, "projector");
  const other = new DeferredEvents(db, "another");
  // Kept in an order of their own (as a batch's failures and redeliveries interleave).
  for (let i = 0; i < count; i++) {
    const msg = delivered[(i * 7) % count]!;
    expect(kept.keep(msg, `e-${msg.info.streamSequence}`, 0)).toBe(true);
  }
  expect(other.keep(delivered[0]!, "e-1", 0)).toBe(true);
  // Delivered again (its ack lost, say): not kept twice.
  expect(kept.keep(delivered[6]!, "e-7", 0)).toBe(false);

  expect([...kept.rows()].map((row) => row.stream_seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  expect([kept.count(), other.count()]).toEqual([count, 1]);
  kept.remove("e-7");
  expect([...kept.rows()]).toHaveLength(count - 1);
  expect([kept.count(), other.count()]).toEqual([count - 1, 1]);
  db.close();
});
