import { toBinary } from "@bufbuild/protobuf";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { Db } from "../sqlite/index.js";
import { subjectOf } from "./subjects.js";

/**
 * Writes events into the outbox table. Call `append` inside the transaction
 * that makes the change, so the event exists exactly when the change does.
 */
export class Outbox {
  private readonly insert;
  private readonly listeners = new Set<() => void>();

  constructor(db: Db, private readonly clock: () => number = Date.now) {
    this.insert = db.prepare<[string, string, Uint8Array, number, string | null]>(
      "INSERT INTO outbox (event_id, subject, payload, create_time, traceparent) VALUES (?, ?, ?, ?, ?)",
    );
  }

  /** Adds an event; it is published after the surrounding transaction commits. */
  append(event: Event): void {
    this.insert.run(event.eventId, subjectOf(event), toBinary(EventSchema, event), this.clock(), event.traceparent || null);
    for (const listener of this.listeners) listener();
  }

  /** Calls `listener` after each append (the relay uses it to wake up). */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
