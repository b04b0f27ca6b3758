import type { JsMsg } from "nats";
import { keysetPages, type Db } from "../sqlite/index.js";
import { TRACEPARENT_HEADER } from "./outbox-relay.js";

/** A message kept in deferred_events (see deferredEventsMigration). */
export interface DeferredRow {
  event_id: string;
  stream: string;
  stream_seq: number;
  /** When the stream stored it (ms). */
  stream_time: number;
  subject: string;
  payload: Buffer;
  traceparent: string | null;
}

/** Rows read at a time (see DeferredEvents.rows). */
const PAGE = 200;

/** When a stream stored a message (ms). */
export function streamTimeOf(msg: JsMsg): number {
  return Math.floor(msg.info.timestampNanos / 1e6);
}

/**
 * The events one consumer keeps, of a payload type its code does not know
 * (a newer version's), until a consumer that knows the type applies them
 * (EventConsumer, at its start). The live consumer and `npm run rebuild`
 * keep them alike.
 */
export class DeferredEvents {
  private readonly statements;

  constructor(
    db: Db,
    private readonly consumer: string,
  ) {
    this.statements = {
      keep: db.prepare(
        `INSERT OR IGNORE INTO deferred_events (consumer, event_id, stream, stream_seq, stream_time, subject, payload, traceparent, create_time)
         VALUES (@consumer, @eventId, @stream, @streamSeq, @streamTime, @subject, @payload, @traceparent, @now)`,
      ),
      after: db.prepare<{ consumer: string; time: number; seq: number; id: string }, DeferredRow>(
        `SELECT event_id, stream, stream_seq, stream_time, subject, payload, traceparent FROM deferred_events
         WHERE consumer = @consumer AND (stream_time, stream_seq, event_id) > (@time, @seq, @id)
         ORDER BY stream_time, stream_seq, event_id LIMIT ${PAGE}`,
      ),
      count: db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM deferred_events WHERE consumer = ?"),
      remove: db.prepare<[string, string]>("DELETE FROM deferred_events WHERE consumer = ? AND event_id = ?"),
    };
  }

  /** Keeps a delivered message with its event's id (inside the caller's transaction); false when it was kept already. */
  keep(msg: JsMsg, eventId: string, now: number): boolean {
    const { changes } = this.statements.keep.run({
      consumer: this.consumer,
      eventId,
      stream: msg.info.stream,
      streamSeq: msg.info.streamSequence,
      streamTime: streamTimeOf(msg),
      subject: msg.subject,
      payload: Buffer.from(msg.data),
      traceparent: msg.headers?.get(TRACEPARENT_HEADER) || null,
      now,
    });
    return changes > 0;
  }

  /** The rows kept, in the order the stream stored them, read a page at a time. */
  rows(): Generator<DeferredRow> {
    return keysetPages(
      (after) => this.statements.after.all({ consumer: this.consumer, time: after?.stream_time ?? -1, seq: after?.stream_seq ?? -1, id: after?.event_id ?? "" }),
      PAGE,
    );
  }

  /** How many it keeps. */
  count(): number {
    return this.statements.count.get(this.consumer)?.n ?? 0;
  }

  /** Forgets one (applied or dead-lettered, inside the caller's transaction). */
  remove(eventId: string): void {
    this.statements.remove.run(this.consumer, eventId);
  }
}
