import type { JsMsg } from "nats";
import { expect, test } from "vitest";
import { openDatabase } from "../sqlite/index.js";
import { DeferredEvents } from "./deferred-events.js";
import { deadLetterTimeMigration, deferredEventsMigration, inboxMigration } from "./schema.js";

/** What DeferredEvents reads of a delivered message: the stream's sequence and time, its subject, data and headers. */
function delivered(seq: number, timeMs: number): JsMsg {
  return {
    subject: "orderly.orders.created",
    data: new Uint8Array([seq % 256]),
    headers: undefined,
    info: { stream: "ORDERS", streamSequence: seq, timestampNanos: timeMs * 1e6 },
  } as unknown as JsMsg;
}

test("kept events are kept once each, read back in the order the stream stored them across pages, counted, and forgotten one by one", () => {
  const db = openDatabase({ file: ":memory:", migrations: [inboxMigration, deadLetterTimeMigration, deferredEventsMigration] });
  const kept = new DeferredEvents(db, "projector");
  const other = new DeferredEvents(db, "another");
  // 450 messages (more than two pages), kept in an order of their own; some share a time (the stream's clock in ms).
  const seqs = Array.from({ length: 450 }, (_, i) => ((i * 7) % 450) + 1);
  for (const seq of seqs) expect(kept.keep(delivered(seq, 1000 + Math.floor(seq / 3)), `e-${seq}`, 0)).toBe(true);
  expect(other.keep(delivered(1, 1000), "e-1", 0)).toBe(true);
  // Delivered again (its ack lost, say): not kept twice.
  expect(kept.keep(delivered(7, 1000 + 2), "e-7", 0)).toBe(false);

  expect([...kept.rows()].map((row) => row.stream_seq)).toEqual(Array.from({ length: 450 }, (_, i) => i + 1));
  expect([kept.count(), other.count()]).toEqual([450, 1]);
  kept.remove("e-7");
  expect([...kept.rows()]).toHaveLength(449);
  expect([kept.count(), other.count()]).toEqual([449, 1]);
  db.close();
});
