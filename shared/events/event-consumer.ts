import { fromBinary } from "@bufbuild/protobuf";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "nats";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { Logger } from "../logging/index.js";
import type { Db } from "../sqlite/index.js";

/** What a consumer does with one event: called inside a SQLite transaction, so a throw undoes it. */
export type EventHandler = (event: Event, subject: string) => void;

/** How a consumer consumes. */
export interface EventConsumerOptions {
  js: JetStreamClient;
  db: Db;
  logger: Logger;
  /** The stream and durable consumer (see ensureDurableConsumer). */
  stream: string;
  durable: string;
  handle: EventHandler;
  /** Deliveries of one message before it is dead-lettered. */
  maxDeliveries?: number;
  /** First redelivery delay after a failure (ms); doubles per delivery, up to 30 s. */
  retryDelayMs?: number;
  /** Messages pulled at a time. */
  batch?: number;
  /** Called after each transaction that applied an event. */
  onApplied?: (event: Event) => void;
  clock?: () => number;
}

/** What a consumer has done. */
export interface ConsumerStats {
  applied: number;
  skippedDuplicates: number;
  retried: number;
  deadLettered: number;
}

/** The message could not be decoded into an Event; it will never succeed. */
class UndecodableEvent extends Error {
  override readonly name = "UndecodableEvent";
}

/**
 * A durable JetStream pull consumer with explicit outcomes: each event is
 * applied and its id recorded in one SQLite transaction, then acked (a
 * redelivery finds the id and changes nothing); a failure is nak'ed with a
 * growing delay; after `maxDeliveries` the message is recorded in
 * dead_letters with the reason and terminated, so it does not stall the rest.
 */
export class EventConsumer {
  private readonly statements;
  private readonly applyTx;
  private readonly maxDeliveries: number;
  private readonly retryDelayMs: number;
  private readonly clock: () => number;
  private messages: ConsumerMessages | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  readonly stats: ConsumerStats = { applied: 0, skippedDuplicates: 0, retried: 0, deadLettered: 0 };

  constructor(private readonly options: EventConsumerOptions) {
    const { db, durable } = options;
    this.maxDeliveries = options.maxDeliveries ?? 5;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.clock = options.clock ?? Date.now;
    this.statements = {
      seen: db.prepare<[string, string], { one: number }>("SELECT 1 AS one FROM processed_events WHERE consumer = ? AND event_id = ?"),
      record: db.prepare<[string, string, number]>("INSERT INTO processed_events (consumer, event_id, applied_time) VALUES (?, ?, ?)"),
      deadLetter: db.prepare(
        `INSERT OR IGNORE INTO dead_letters (consumer, stream, stream_seq, subject, event_id, deliveries, reason, payload, create_time)
         VALUES (@consumer, @stream, @streamSeq, @subject, @eventId, @deliveries, @reason, @payload, @now)`,
      ),
    };
    this.applyTx = db.transaction((event: Event, subject: string): boolean => {
      if (this.statements.seen.get(durable, event.eventId)) return false;
      options.handle(event, subject);
      this.statements.record.run(durable, event.eventId, this.clock());
      return true;
    });
  }

  /** Starts consuming in the background; reconnects and resumes on its own. */
  start(): void {
    this.running ??= this.loop();
  }

  /** Stops pulling; the message in hand is finished first. */
  async close(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.running;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const consumer = await this.options.js.consumers.get(this.options.stream, this.options.durable);
        this.messages = await consumer.consume({ max_messages: this.options.batch ?? 256 });
        if (this.stopped) this.messages.stop();
        for await (const msg of this.messages) {
          failures = 0;
          this.process(msg);
        }
      } catch (error) {
        if (this.stopped) break;
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err: error, durable: this.options.durable }, "consumer interrupted; resuming");
      }
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** Math.min(failures, 5))));
    }
  }

  private process(msg: JsMsg): void {
    let event: Event | undefined;
    try {
      try {
        event = fromBinary(EventSchema, msg.data);
      } catch (error) {
        throw new UndecodableEvent(`not an orderly.events.v1.Event: ${String(error)}`);
      }
      if (event.eventId === "" || event.payload.case === undefined) throw new UndecodableEvent("event without id or payload");
      if (this.applyTx.immediate(event, msg.subject)) {
        this.stats.applied++;
        this.options.onApplied?.(event);
      } else {
        this.stats.skippedDuplicates++;
      }
      msg.ack();
    } catch (error) {
      this.fail(msg, event, error);
    }
  }

  private fail(msg: JsMsg, event: Event | undefined, error: unknown): void {
    const deliveries = msg.info.deliveryCount;
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    if (deliveries >= this.maxDeliveries) {
      this.statements.deadLetter.run({
        consumer: this.options.durable,
        stream: msg.info.stream,
        streamSeq: msg.info.streamSequence,
        subject: msg.subject,
        eventId: event?.eventId || null,
        deliveries,
        reason,
        payload: Buffer.from(msg.data),
        now: this.clock(),
      });
      msg.term(reason.slice(0, 200));
      this.stats.deadLettered++;
      this.options.logger.error({ durable: this.options.durable, seq: msg.info.streamSequence, deliveries, reason }, "event dead-lettered");
      return;
    }
    this.stats.retried++;
    const delay = Math.min(30_000, this.retryDelayMs * 2 ** (deliveries - 1));
    this.options.logger.warn({ durable: this.options.durable, seq: msg.info.streamSequence, deliveries, reason, delay }, "event failed; will retry");
    msg.nak(delay);
  }
}
