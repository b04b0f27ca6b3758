import { SpanKind } from "@opentelemetry/api";
import { headers, type JetStreamClient, type PubAck } from "nats";
import type { Logger } from "../logging/index.js";
import { contextFromTraceparent, endSpanWithError, traceparentOf, withSpan } from "../observability/trace-context.js";
import { readAtMost } from "../observability/read-at-most.js";
import { recordsSpans, tracer } from "../observability/tracing.js";
import type { Db } from "../sqlite/index.js";

/** How the relay publishes. */
export interface OutboxRelayOptions {
  db: Db;
  js: JetStreamClient;
  logger: Logger;
  /** Events published concurrently (pipelined on one connection, so in order). */
  batchSize?: number;
  /** How often to look for events when nothing woke the relay (ms). */
  pollMs?: number;
  /** How long to wait for a PubAck (ms). */
  publishTimeoutMs?: number;
  /** Published rows older than this are deleted (ms). */
  retentionMs?: number;
  clock?: () => number;
}

/** What the relay has done, for health and metrics. */
export interface OutboxStats {
  published: number;
  duplicates: number;
  failures: number;
  backlog: number;
  oldestUnpublishedAgeMs: number;
}

interface Row {
  seq: number;
  event_id: string;
  subject: string;
  payload: Buffer;
  create_time: number;
  traceparent: string | null;
}

/** The NATS header carrying the W3C trace context of the publish span. */
export const TRACEPARENT_HEADER = "traceparent";

/**
 * Publishes outbox rows to JetStream, oldest first, with the event id as
 * Nats-Msg-Id, many in flight on one connection (which keeps per-aggregate
 * order), marking each row published when its PubAck arrives. After a crash
 * it resumes from the unpublished rows; a row published but not marked is
 * published again and JetStream drops it as a duplicate. While NATS is down
 * it backs off and retries; writers never wait for it.
 */
export class OutboxRelay {
  private readonly statements;
  private readonly markPublished;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly publishTimeoutMs: number;
  private readonly retentionMs: number;
  private readonly clock: () => number;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastPrune = 0;
  private readonly counters = { published: 0, duplicates: 0, failures: 0 };
  /** The backlog is a COUNT over the outbox: read at most once a second, however many metrics and status reports ask. */
  private readonly backlog: () => { n: number; oldest: number | null };

  constructor(private readonly options: OutboxRelayOptions) {
    const { db } = options;
    this.batchSize = options.batchSize ?? 256;
    this.pollMs = options.pollMs ?? 200;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 5000;
    this.retentionMs = options.retentionMs ?? 60 * 60 * 1000;
    this.clock = options.clock ?? Date.now;
    this.statements = {
      unpublished: db.prepare<[number], Row>(
        "SELECT seq, event_id, subject, payload, create_time, traceparent FROM outbox WHERE published_time IS NULL ORDER BY seq LIMIT ?",
      ),
      mark: db.prepare<[number, number]>("UPDATE outbox SET published_time = ? WHERE seq = ?"),
      markRange: db.prepare<[number, number, number]>("UPDATE outbox SET published_time = ? WHERE seq BETWEEN ? AND ? AND published_time IS NULL"),
      prune: db.prepare<[number]>("DELETE FROM outbox WHERE published_time IS NOT NULL AND published_time < ?"),
      backlog: db.prepare<[], { n: number; oldest: number | null }>(
        "SELECT count(*) AS n, min(create_time) AS oldest FROM outbox WHERE published_time IS NULL",
      ),
    };
    this.backlog = readAtMost(1000, () => this.statements.backlog.get()!, this.clock);
    this.markPublished = db.transaction((seqs: number[], now: number, wholeBatch: boolean) => {
      // A batch is the oldest unpublished rows in seq order: when all were acked, one range update marks them.
      if (wholeBatch) this.statements.markRange.run(now, seqs[0]!, seqs[seqs.length - 1]!);
      else for (const seq of seqs) this.statements.mark.run(now, seq);
    });
  }

  /** Starts publishing in the background. */
  start(): void {
    this.running ??= this.loop();
  }

  /** Wakes the relay now (after a commit that appended events). */
  notify(): void {
    this.wake?.();
  }

  /** Counters and the current backlog. */
  stats(): OutboxStats {
    const now = this.clock();
    const backlog = this.backlog();
    return {
      ...this.counters,
      backlog: backlog.n,
      oldestUnpublishedAgeMs: backlog.oldest === null ? 0 : Math.max(0, now - backlog.oldest),
    };
  }

  /** Stops after the batch in flight (its acked rows are marked; the rest stay for the next start). */
  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let progressed = false;
      try {
        progressed = await this.publishBatch();
        failures = 0;
      } catch (error) {
        failures++;
        this.counters.failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err: error, failures }, "outbox publish failed; retrying");
      }
      this.pruneNow();
      if (progressed && failures === 0) continue;
      const delay = failures === 0 ? this.pollMs : Math.min(2000, 50 * 2 ** Math.min(failures, 6));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Publishes one batch; true when it published anything. Throws when any publish failed (after marking the rest). */
  private async publishBatch(): Promise<boolean> {
    const rows = this.statements.unpublished.all(this.batchSize);
    if (rows.length === 0) return false;
    const results = await Promise.allSettled(rows.map((row) => this.publish(row)));
    const acked: number[] = [];
    let firstError: unknown;
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        acked.push(rows[i]!.seq);
        if (result.value.duplicate) this.counters.duplicates++;
      } else {
        firstError ??= result.reason;
      }
    });
    if (acked.length > 0) {
      this.markPublished(acked, this.clock(), acked.length === rows.length);
      this.counters.published += acked.length;
    }
    if (firstError !== undefined) throw firstError;
    return true;
  }

  /**
   * Publishes one row. A row written inside a trace is published in a
   * PRODUCER span of that trace, whose context travels in the message's
   * `traceparent` header to the consumers. When the process records no
   * spans, the row's own traceparent travels instead (same trace, no span
   * to make per event).
   */
  private publish(row: Row): Promise<PubAck> {
    const options = { msgID: row.event_id, timeout: this.publishTimeoutMs };
    if (row.traceparent === null) return this.options.js.publish(row.subject, row.payload, options);
    if (!recordsSpans()) {
      const h = headers();
      h.set(TRACEPARENT_HEADER, row.traceparent);
      return this.options.js.publish(row.subject, row.payload, { ...options, headers: h });
    }
    const parent = contextFromTraceparent(row.traceparent);
    const span = tracer().startSpan(`publish ${row.subject}`, { kind: SpanKind.PRODUCER }, parent);
    if (span.isRecording()) span.setAttributes({ "messaging.system": "nats", "messaging.destination.name": row.subject, "messaging.message.id": row.event_id });
    const h = headers();
    h.set(TRACEPARENT_HEADER, traceparentOf(span.spanContext()));
    return this.options.js.publish(row.subject, row.payload, { ...options, headers: h }).then(
      (ack) => {
        if (this.options.logger.isLevelEnabled("debug")) {
          withSpan(span, () => this.options.logger.debug({ eventId: row.event_id, subject: row.subject, streamSeq: ack.seq }, "event published"), parent);
        }
        span.end();
        return ack;
      },
      (error: unknown) => {
        endSpanWithError(span, error);
        throw error;
      },
    );
  }

  private pruneNow(): void {
    const now = this.clock();
    if (now - this.lastPrune < 60_000) return;
    this.lastPrune = now;
    const pruned = this.statements.prune.run(now - this.retentionMs).changes;
    if (pruned > 0) this.options.logger.debug({ pruned }, "pruned published outbox rows");
  }
}
