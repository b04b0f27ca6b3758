import { toBinary } from "@bufbuild/protobuf";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { Db } from "../sqlite/index.js";
import { subjectOf } from "./subjects.js";

/** What the relay publishes of an outbox row, besides its seq and event id. */
export interface OutboxMessage {
  subject: string;
  payload: Uint8Array;
  traceparent: string | null;
}

/** How an outbox is set up. */
export interface OutboxOptions {
  clock?: () => number;
  /** How many of the events it appended it remembers for the relay, at most (the newest are kept). */
  rememberEvents?: number;
  /** How many bytes of payload it remembers, at most. */
  rememberBytes?: number;
}

/**
 * Writes events into the outbox table. Call `append` inside the transaction
 * that makes the change, so the event exists exactly when the change does.
 *
 * It also keeps what it appended in memory, by event id, until the relay
 * takes it: the relay then reads only the seq and id of the rows it
 * publishes, and SQLite still decides which events exist and in what order
 * (an event whose transaction rolled back has no row, so it is never taken,
 * and falls out of memory as newer ones come in). Reading the subject,
 * payload and trace context back cost ~4.5 µs of the relay's CPU per event
 * (most of it making a Buffer of the payload), about a tenth of all it does.
 * What is not remembered (after a restart, or beyond the bounds, e.g. during
 * a long NATS outage) is read from the table.
 */
export class Outbox {
  private readonly insert;
  private readonly listeners = new Set<() => void>();
  private readonly remembered = new Map<string, OutboxMessage>();
  private rememberedBytes = 0;
  private readonly clock: () => number;
  private readonly rememberEvents: number;
  private readonly rememberBytes: number;

  constructor(db: Db, options: OutboxOptions = {}) {
    this.clock = options.clock ?? Date.now;
    this.rememberEvents = options.rememberEvents ?? 16_384;
    this.rememberBytes = options.rememberBytes ?? 8 * 1024 * 1024;
    this.insert = db.prepare<[string, string, Uint8Array, number, string | null]>(
      "INSERT INTO outbox (event_id, subject, payload, create_time, traceparent) VALUES (?, ?, ?, ?, ?)",
    );
  }

  /** Adds an event; it is published after the surrounding transaction commits. */
  append(event: Event): void {
    const message: OutboxMessage = { subject: subjectOf(event), payload: toBinary(EventSchema, event), traceparent: event.traceparent || null };
    this.insert.run(event.eventId, message.subject, message.payload, this.clock(), message.traceparent);
    this.remember(event.eventId, message);
    for (const listener of this.listeners) listener();
  }

  /** Calls `listener` after each append (the relay uses it to wake up). */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** How many appended events it remembers (not yet taken, nor pushed out). */
  get rememberedEvents(): number {
    return this.remembered.size;
  }

  /** The message appended under `eventId`, once (it is forgotten); undefined when it is not remembered. */
  take(eventId: string): OutboxMessage | undefined {
    const message = this.remembered.get(eventId);
    if (message === undefined) return undefined;
    this.remembered.delete(eventId);
    this.rememberedBytes -= message.payload.byteLength;
    return message;
  }

  private remember(eventId: string, message: OutboxMessage): void {
    this.take(eventId);
    this.remembered.set(eventId, message);
    this.rememberedBytes += message.payload.byteLength;
    // Forget the oldest first (a Map iterates in insertion order).
    while (this.remembered.size > this.rememberEvents || this.rememberedBytes > this.rememberBytes) {
      this.take(this.remembered.keys().next().value!);
    }
  }
}
