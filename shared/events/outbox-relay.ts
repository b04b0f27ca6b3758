import { SpanKind } from "@opentelemetry/api";
import type { NatsConnection, PubAck } from "nats";
import type { Logger } from "../logging/index.js";
import { contextFromTraceparent, endSpanWithError, traceparentOf, withSpan } from "../observability/trace-context.js";
import { readAtMost } from "../observability/read-at-most.js";
import { recordsSpans, tracer } from "../observability/tracing.js";
import type { Db } from "../sqlite/index.js";
import { JetStreamPublisher } from "./jetstream-publisher.js";
import { PUBLISHED_THROUGH_SQL } from "./schema.js";

/** How the relay publishes. */
export interface OutboxRelayOptions {
  db: Db;
  nc: NatsConnection;
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
  traceparent: string | null;
}

/** Rows deleted per statement when pruning, so a large prune does not hold the database (or the event loop) long. */
const PRUNE_CHUNK = 1000;
const PRUNE_CHUNKS_PER_PASS = 20;

/** The NATS header carrying the W3C trace context of the publish span. */
export const TRACEPARENT_HEADER = "traceparent";

/**
 * Publishes outbox rows to JetStream, oldest first, with the event id as
 * Nats-Msg-Id, a batch in flight at a time on one connection (which keeps
 * per-aggregate order), recording how far it got once the batch's PubAcks
 * are in (outbox_batches). After a crash it resumes after the last batch
 * recorded; a row published but not recorded is published again and
 * JetStream drops it as a duplicate. While NATS is down it backs off and
 * retries; writers never wait for it. Progress can be a single seq because
 * rows become visible in seq order: the service's one connection writes
 * them, a transaction at a time.
 */
export class OutboxRelay {
  private readonly statements;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly publisher: JetStreamPublisher;
  private readonly retentionMs: number;
  private readonly clock: () => number;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastPrune = 0;
  private readonly counters = { published: 0, duplicates: 0, failures: 0 };
  /** The highest seq published: every row up to it is (rows after it may be too, and are then published again). */
  private publishedThrough: number;
  /** The backlog is a COUNT over the outbox: read at most once a second, however many metrics and status reports ask. */
  private readonly backlog: () => { n: number; oldest: number | null };

  constructor(private readonly options: OutboxRelayOptions) {
    const { db } = options;
    this.batchSize = options.batchSize ?? 256;
    this.pollMs = options.pollMs ?? 200;
    this.publisher = new JetStreamPublisher(options.nc, options.publishTimeoutMs ?? 5000);
    this.retentionMs = options.retentionMs ?? 60 * 60 * 1000;
    this.clock = options.clock ?? Date.now;
    this.statements = {
      unpublished: db.prepare<[number, number], Row>("SELECT seq, event_id, subject, payload, traceparent FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
      published: db.prepare(PUBLISHED_THROUGH_SQL).pluck(),
      recordBatch: db.prepare<[number, number, number]>("INSERT INTO outbox_batches (through_seq, events, publish_time) VALUES (?, ?, ?)"),
      // Published rows in seq order, a chunk at a time: rows are appended in time order, so the old ones come first.
      prune: db.prepare<[number, number, number]>("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE seq <= ? ORDER BY seq LIMIT ?) AND create_time < ?"),
      pruneBatches: db.prepare<[number, number]>("DELETE FROM outbox_batches WHERE through_seq < ? AND publish_time < ?"),
      backlog: db.prepare<[number, number], { n: number; oldest: number | null }>(
        "SELECT count(*) AS n, (SELECT create_time FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1) AS oldest FROM outbox WHERE seq > ?",
      ),
    };
    this.publishedThrough = this.statements.published.get() as number;
    this.backlog = readAtMost(1000, () => this.statements.backlog.get(this.publishedThrough, this.publishedThrough)!, this.clock);
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

  /** Stops after the batch in flight (what it published is recorded; the rest stays for the next start). */
  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    this.publisher.close();
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

  /** Publishes one batch; true when it published anything. Throws when any publish failed (after recording what went before it). */
  private async publishBatch(): Promise<boolean> {
    const rows = this.statements.unpublished.all(this.publishedThrough, this.batchSize);
    if (rows.length === 0) return false;
    const results = await Promise.allSettled(rows.map((row) => this.publish(row)));
    // Progress is the run of acked rows from the start of the batch; acked rows after a failure are published again next time (JetStream drops them as duplicates).
    let through = 0;
    let firstError: unknown;
    for (const result of results) {
      if (result.status === "fulfilled") {
        this.counters.published++;
        if (result.value.duplicate) this.counters.duplicates++;
        if (firstError === undefined) through++;
      } else {
        firstError ??= result.reason;
      }
    }
    if (through > 0) {
      const seq = rows[through - 1]!.seq;
      this.statements.recordBatch.run(seq, through, this.clock());
      this.publishedThrough = seq;
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
    const message = { subject: row.subject, payload: row.payload, msgID: row.event_id };
    if (row.traceparent === null) return this.publisher.publish(message);
    if (!recordsSpans()) return this.publisher.publish({ ...message, headers: { [TRACEPARENT_HEADER]: row.traceparent } });
    const parent = contextFromTraceparent(row.traceparent);
    const span = tracer().startSpan(`publish ${row.subject}`, { kind: SpanKind.PRODUCER }, parent);
    if (span.isRecording()) span.setAttributes({ "messaging.system": "nats", "messaging.destination.name": row.subject, "messaging.message.id": row.event_id });
    return this.publisher.publish({ ...message, headers: { [TRACEPARENT_HEADER]: traceparentOf(span.spanContext()) } }).then(
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
    const cutoff = now - this.retentionMs;
    let pruned = 0;
    let changes = PRUNE_CHUNK;
    for (let chunk = 0; chunk < PRUNE_CHUNKS_PER_PASS && changes === PRUNE_CHUNK; chunk++) {
      changes = this.statements.prune.run(this.publishedThrough, PRUNE_CHUNK, cutoff).changes;
      pruned += changes;
    }
    // More left than one pass takes: go on after the next batch instead of in a minute.
    if (changes < PRUNE_CHUNK) this.lastPrune = now;
    this.statements.pruneBatches.run(this.publishedThrough, cutoff);
    if (pruned > 0) this.options.logger.debug({ pruned }, "pruned published outbox rows");
  }
}
