import { SpanKind } from "@opentelemetry/api";
import type { NatsConnection, PubAck } from "nats";
import type { Logger } from "../logging/index.js";
import { contextFromTraceparent, endSpanWithError, traceparentOf, withSpan } from "../observability/trace-context.js";
import { readAtMost } from "../observability/read-at-most.js";
import { recordsSpans, tracer } from "../observability/tracing.js";
import { boundLimit, type Db } from "../sqlite/index.js";
import { decodeEvent } from "./event-decoding.js";
import { JetStreamPublisher, NatsConnectionLost, NothingSent, StreamFull, type JetStreamMessage } from "./jetstream-publisher.js";
import type { Outbox, OutboxMessage } from "./outbox.js";
import { outboxBacklog, PUBLISHED_THROUGH_SQL } from "./schema.js";
import { settlesWithin } from "../process/shutdown.js";

/** How the relay publishes. */
export interface OutboxRelayOptions {
  db: Db;
  nc: NatsConnection;
  logger: Logger;
  /** The process's outbox, when it writes to `db`: each append wakes the relay, and the events it still remembers are not read back from the table. */
  outbox?: Outbox;
  /** Events published concurrently (pipelined on one connection, so in order). */
  batchSize?: number;
  /** How often to look for events when nothing woke the relay (ms). */
  pollMs?: number;
  /** How long to wait for a PubAck (ms). */
  publishTimeoutMs?: number;
  /**
   * Called when a pass published nothing, and not for a full stream, a lost connection or a publisher that sent
   * nothing (its PubAck subscription refused: NothingSent): the stream may
   * be gone (JetStream then answers no publish, or only with 503), for the caller to make it again.
   */
  onPublishFailed?: () => void;
  /**
   * How long passes may fail with NATS connected (no PubAck, JetStream not
   * answering) before the relay says so at error, once (ms; default 60 s).
   */
  stallMs?: number;
  /** The wait after a failed pass, doubling per failure from `initialMs` up to `maxMs` (default 100 ms to 2 s). */
  backoff?: { initialMs: number; maxMs: number };
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

interface Row extends OutboxMessage {
  seq: number;
  event_id: string;
}

/** A row set aside earlier, with how often it was refused. */
type RetryRow = Row & { failures: number };

/** A row and what JetStream answered to it. */
interface Outcome<R extends Row> {
  row: R;
  result: PromiseSettledResult<PubAck>;
}

/**
 * Pruning looks at this many rows per statement and at most this many chunks per pass, so a large prune does not hold
 * the database (or the event loop) long. It runs inside the relay's pass, between batches, so a pass is bounded here
 * rather than by shared/sqlite's deleteInChunks, which yields between chunks until it is done.
 */
const PRUNE_CHUNK = 1000;
const PRUNE_CHUNKS_PER_PASS = 20;
/** How long a close waits for the PubAcks of the batch in flight before it gives them up. */
const CLOSE_WAIT_MS = 1000;
/** The longest a row set aside waits before it is published again (ms). */
const LONGEST_RETRY_WAIT_MS = 60_000;

/** What the relay logs of a failed pass: a full stream and JetStream's storage used up each say what to raise. */
function failureMessage(error: unknown): string {
  if (!(error instanceof StreamFull)) return "outbox publish failed; retrying";
  if (error.limit === "stream") return "a stream is full: events wait in the outbox until it has room (STREAM_MAX_EVENTS)";
  return "JetStream's storage is used up (the server's max_file_store or the account's limit; not STREAM_MAX_EVENTS): events wait in the outbox until it has room";
}

/** The NATS header carrying the W3C trace context of the publish span. */
export const TRACEPARENT_HEADER = "traceparent";

/**
 * Publishes outbox rows to JetStream, oldest first, with the event id as
 * Nats-Msg-Id, a batch in flight at a time on one connection (which keeps
 * per-aggregate order; the next batch is read meanwhile), recording how far
 * it got once the batch's PubAcks are in (outbox_batches). After a crash it
 * resumes after the last batch recorded; a row published but not recorded
 * is published again and JetStream drops it as a duplicate. While NATS is
 * down it backs off and retries (appends do not cut the back-off short; the
 * connection coming back does); writers never wait for it. Progress can be
 * a single seq because rows become visible in seq order: the service's one
 * connection writes them, a transaction at a time.
 */
export class OutboxRelay {
  private readonly statements;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly publisher: JetStreamPublisher;
  private readonly retentionMs: number;
  private readonly clock: () => number;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Passes in a row that failed (NATS down, JetStream not answering); 0 after one that did not. */
  private failures = 0;
  /** When passes began failing with NATS connected, a full stream aside (performance.now()), while they still do. */
  private failingSince: number | undefined;
  /** How long the connection had been down (the publisher's downMs) when the failing began: outages do not count toward a stall. */
  private downWhenFailingBegan = 0;
  /** Whether the failing was said at error (see OutboxRelayOptions.stallMs). */
  private stallReported = false;
  /** The connection came back since the loop last looked: no back-off before the next pass. */
  private reconnected = false;
  private lastPrune = 0;
  private readonly counters = { published: 0, duplicates: 0, failures: 0 };
  /** The highest seq the relay got past: every row up to it is published or set aside in outbox_retry. */
  private publishedThrough: number;
  /** The rows after `after`, read while the batch ending there was in flight (used when the relay gets past it). */
  private prefetched: { after: number; rows: Row[] } | undefined;
  private readonly recordProgressTx;
  /** The backlog counts the unpublished rows: read at most once a second, however many metrics and status reports ask. */
  private readonly backlog: () => { n: number; oldest: number | null };
  /** Stops listening to the outbox's appends and the connection's returns. */
  private readonly stopListening: () => void;

  constructor(private readonly options: OutboxRelayOptions) {
    const { db } = options;
    this.batchSize = options.batchSize ?? 256;
    this.pollMs = options.pollMs ?? 200;
    this.backoff = options.backoff ?? { initialMs: 100, maxMs: 2000 };
    this.publisher = new JetStreamPublisher(options.nc, options.publishTimeoutMs ?? 5000);
    this.retentionMs = options.retentionMs ?? 60 * 60 * 1000;
    this.clock = options.clock ?? Date.now;
    this.statements = {
      unpublished: db.prepare<[number, number], Row>(`SELECT seq, event_id, subject, payload, traceparent FROM outbox WHERE seq > ? ORDER BY seq LIMIT ${boundLimit()}`),
      unpublishedKeys: db.prepare<[number, number], [number, string]>(`SELECT seq, event_id FROM outbox WHERE seq > ? ORDER BY seq LIMIT ${boundLimit()}`).raw(true),
      due: db.prepare<[number, number, number], RetryRow>(
        // By the due time's index: left to itself SQLite reads the table in seq order, every row of it when few are due.
        // Due too: a row set aside further ahead than the longest wait can take it (the wall clock was ahead then, and has
        // been set right; twice the wait, so that a step back of a few seconds does not make every row waiting a minute due).
        `SELECT seq, event_id, subject, payload, traceparent, failures FROM outbox_retry INDEXED BY outbox_retry_due JOIN outbox USING (seq)
         WHERE next_attempt <= ? OR next_attempt > ? ORDER BY seq LIMIT ${boundLimit()}`,
      ),
      recordBatch: db.prepare<[number, number, number]>("INSERT INTO outbox_batches (through_seq, events, publish_time) VALUES (?, ?, ?)"),
      setAside: db.prepare<[number, number, string, number]>(
        `INSERT INTO outbox_retry (seq, failures, last_error, next_attempt) VALUES (?, ?, ?, ?)
         ON CONFLICT (seq) DO UPDATE SET failures = excluded.failures, last_error = excluded.last_error, next_attempt = excluded.next_attempt`,
      ),
      retried: db.prepare<[number]>("DELETE FROM outbox_retry WHERE seq = ?"),
      // Published rows in seq order, a chunk at a time: rows are appended in time order, so the old ones come first.
      chunkEnd: db.prepare<[number, number, number]>(`SELECT max(seq) FROM (SELECT seq FROM outbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ${boundLimit()})`).pluck(),
      prune: db.prepare<[number, number, number]>(
        "DELETE FROM outbox WHERE seq > ? AND seq <= ? AND create_time < ? AND seq NOT IN (SELECT seq FROM outbox_retry)",
      ),
      pruneBatches: db.prepare<[number, number]>("DELETE FROM outbox_batches WHERE through_seq < ? AND publish_time < ?"),
    };
    this.publishedThrough = db.prepare(PUBLISHED_THROUGH_SQL).pluck().get() as number;
    this.backlog = readAtMost(1000, () => outboxBacklog(db));
    // An append wakes the relay unless it is backing off after a failure or NATS is down: each write
    // would otherwise start a pass bound to fail. The connection coming back ends the back-off.
    const stopAppends = options.outbox?.onAppend(() => {
      if (this.failures === 0 && this.publisher.isConnected) this.notify();
    });
    const stopReconnects = this.publisher.onReconnect(() => {
      this.failures = 0;
      this.reconnected = true;
      this.notify();
    });
    this.stopListening = () => {
      stopAppends?.();
      stopReconnects();
    };
    this.recordProgressTx = db.transaction((retries: Outcome<RetryRow>[], refused: Outcome<Row>[], batch: Row[]): number | undefined => {
      const now = this.clock();
      for (const { row, result } of retries) {
        if (result.status === "fulfilled") this.statements.retried.run(row.seq);
        else this.setAside(row, row.failures + 1, result.reason, now);
      }
      for (const { row, result } of refused) this.setAside(row, 1, (result as PromiseRejectedResult).reason, now);
      if (batch.length === 0) return undefined;
      const through = batch[batch.length - 1]!.seq;
      this.statements.recordBatch.run(through, batch.length, now);
      return through;
    });
  }

  /** Records what a pass did; the relay moves past `batch` only once that is committed (a failed COMMIT leaves it to publish again). */
  private recordProgress(retries: Outcome<RetryRow>[], refused: Outcome<Row>[], batch: Row[]): void {
    const through = this.recordProgressTx(retries, refused, batch);
    if (through !== undefined) this.publishedThrough = through;
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

  /**
   * Stops after the batch in flight (what it published is recorded; the rest stays for the next start). A batch whose
   * PubAcks do not come within a second (a hung nats-server) is cut short: what was acked is recorded, and the rest is
   * published again at the next start, where JetStream drops what it had already stored.
   */
  async close(): Promise<void> {
    this.stopped = true;
    this.stopListening();
    this.wake?.();
    if (this.running) await settlesWithin(this.running, CLOSE_WAIT_MS);
    // A batch still waiting for its PubAcks is cut short here (they reject with PublisherClosed); otherwise nothing is in flight.
    this.publisher.close();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let progressed: boolean | "disconnected" = false;
      try {
        progressed = await this.publishBatch();
        if (progressed !== "disconnected") this.failures = 0;
        this.failingEnded(progressed === "disconnected");
      } catch (error) {
        // A batch cut short by close() (its PubAcks not come in time): what was acked is recorded, the rest waits for the next start.
        if (this.stopped) break;
        const failures = ++this.failures;
        this.counters.failures++;
        if (failures === 1 || failures % 20 === 0) {
          this.options.logger.warn({ err: error, failures }, failureMessage(error));
        }
        if (!(error instanceof StreamFull || error instanceof NatsConnectionLost)) {
          this.stillFailing(error);
          if (!(error instanceof NothingSent)) this.options.onPublishFailed?.();
        }
      }
      this.pruneNow();
      if (this.reconnected) {
        this.reconnected = false;
        continue;
      }
      if (progressed === true && this.failures === 0) continue;
      const delay = this.delayAfter(progressed);
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

  /**
   * Notes a pass that failed with NATS connected; once passes have failed
   * for `stallMs` with NATS connected (the time of drops of the connection
   * between them left out), says so at error: JetStream takes no event while the server takes connections (a
   * nats-server stuck on a full disk, say), which no health check sees, and
   * the outbox only grows.
   */
  private stillFailing(error: unknown): void {
    // A span of time, on the monotonic clock the publisher measures outages with (not the relay's wall clock, which a
    // test may set and NTP may step).
    const now = performance.now();
    if (this.failingSince === undefined) {
      this.failingSince = now;
      this.downWhenFailingBegan = this.publisher.downMs;
    }
    // The time it has failed with NATS connected: an outage meanwhile (said elsewhere) is left out.
    const failingMs = now - this.failingSince - (this.publisher.downMs - this.downWhenFailingBegan);
    if (this.stallReported || failingMs < (this.options.stallMs ?? 60_000)) return;
    this.stallReported = true;
    const seconds = Math.round(failingMs / 1000);
    this.options.logger.error(
      { err: error, failingMs: Math.round(failingMs), backlog: this.backlogOrUnknown() },
      `JetStream has taken no event for ${seconds} s while NATS takes connections: events wait in the outbox (is nats-server stuck, its disk full?)`,
    );
  }

  /** The backlog for a log line, which a failing database (the reason it is written, maybe) must not keep from being written. */
  private backlogOrUnknown(): number | undefined {
    try {
      return this.stats().backlog;
    } catch {
      return undefined;
    }
  }

  /**
   * A pass that did not fail: the failing, if any, is over; or one that found
   * NATS down (said elsewhere), which neither ends it nor starts it over: a
   * hung nats-server's clients find their connection dead and connect again
   * every few seconds, and the stall goes on across those drops.
   */
  private failingEnded(disconnected: boolean): void {
    if (this.failingSince === undefined || disconnected) return;
    if (this.stallReported) {
      this.options.logger.info({ failedMs: Math.round(performance.now() - this.failingSince) }, "JetStream takes events again");
      this.stallReported = false;
    }
    this.failingSince = undefined;
  }

  /** How long to wait after a pass that did not go on at once: a poll, a back-off doubling per failure, or (NATS down, nothing tried) until the reconnect wakes it. */
  private delayAfter(progressed: boolean | "disconnected"): number {
    const { initialMs, maxMs } = this.backoff;
    if (progressed === "disconnected") return maxMs;
    if (this.failures === 0) return this.pollMs;
    return Math.min(maxMs, initialMs * 2 ** Math.min(this.failures - 1, 30));
  }

  /**
   * Publishes the rows set aside that are due again, and the next batch.
   * The relay gets past a batch when any of its rows was acked: the rows
   * refused meanwhile are set aside (outbox_retry) and retried with a
   * growing delay, so one event JetStream keeps refusing does not hold up
   * the rest. A batch of which nothing was acked (NATS down, JetStream not
   * answering) is tried again as it is, after a back-off. When the
   * connection drops during a batch, or the stream fills up (a refusal of
   * the stream, not of the event), the relay gets past only the rows acked
   * before the first that was not, and tries the rest again once NATS is
   * back or after a back-off (JetStream drops those it had stored as
   * duplicates), so an outage does not reorder events (a stream's limit is
   * a count, so no event after the first refused fits). True when it got
   * anywhere; throws when it did not because of a failure; "disconnected"
   * when it tried nothing because NATS is down.
   */
  private async publishBatch(): Promise<boolean | "disconnected"> {
    // Not even a read while NATS is down: rows taken from the outbox's memory would have to be read back later
    // (a batch read ahead before the drop is kept: it is used, or dropped, as after any batch).
    if (!this.publisher.isConnected) return "disconnected";
    const now = this.clock();
    const retried = this.statements.due.all(now, now + 2 * LONGEST_RETRY_WAIT_MS, this.batchSize);
    const fresh = this.takePrefetched() ?? this.nextRows(this.publishedThrough);
    if (retried.length + fresh.length === 0) return false;
    const settled = Promise.allSettled([...retried, ...fresh].map((row) => this.publish(row)));
    this.prefetch(fresh);
    const results = await settled;
    const retries = retried.map((row, i) => ({ row, result: results[i]! }));
    const batch = fresh.map((row, i) => ({ row, result: results[retried.length + i]! }));
    for (const result of results) {
      if (result.status === "fulfilled") {
        this.counters.published++;
        if (result.value.duplicate) this.counters.duplicates++;
      }
    }
    const halted = batch.find(({ result }) => result.status === "rejected" && (result.reason instanceof NatsConnectionLost || result.reason instanceof StreamFull));
    if (halted !== undefined) {
      const acked = batch.findIndex(({ result }) => result.status === "rejected");
      this.recordProgress(retries, [], fresh.slice(0, acked));
      throw (halted.result as PromiseRejectedResult).reason;
    }
    const gotPast = batch.some(({ result }) => result.status === "fulfilled");
    const refused = gotPast ? batch.filter(({ result }) => result.status === "rejected") : [];
    this.recordProgress(retries, refused, gotPast ? fresh : []);
    if (refused.length > 0) {
      const { reason } = refused[0]!.result as PromiseRejectedResult;
      this.options.logger.warn({ err: reason, count: refused.length, seqs: refused.slice(0, 10).map(({ row }) => row.seq) }, "events refused while the rest of their batch was published; set aside to retry");
    }
    if (gotPast || retries.some(({ result }) => result.status === "fulfilled")) return true;
    // Nothing was acked, so every row was refused: back off with the first reason.
    throw (results[0] as PromiseRejectedResult).reason;
  }

  /**
   * Reads the batch after a full one while JetStream stores it (once nats.js
   * has written it out, at the microtask it queued), so the relay's reading
   * overlaps the wait for PubAcks instead of following it. Side by side in
   * one process, draining 16,000 events: 27.2k events/s against 24.1k
   * (medians of six). The rows are used only if the relay gets past the
   * whole batch; otherwise they are dropped (the table still has them, and
   * the next batch is read again from where the relay got).
   */
  private prefetch(batch: Row[]): void {
    this.prefetched = undefined;
    if (batch.length < this.batchSize) return;
    const after = batch[batch.length - 1]!.seq;
    queueMicrotask(() => {
      try {
        if (!this.stopped) this.prefetched = { after, rows: this.nextRows(after) };
      } catch {
        // The next pass reads the batch itself, and meets the failure there.
      }
    });
  }

  /** The rows read ahead, when they follow the last row the relay got past. */
  private takePrefetched(): Row[] | undefined {
    const prefetched = this.prefetched;
    this.prefetched = undefined;
    return prefetched?.after === this.publishedThrough && prefetched.rows.length > 0 ? prefetched.rows : undefined;
  }

  /** The batch of rows after seq `after`: from the outbox's memory when it still has every one of them, else from the table. */
  private nextRows(after: number): Row[] {
    const { outbox } = this.options;
    if (outbox !== undefined) {
      const keys = this.statements.unpublishedKeys.all(after, this.batchSize);
      const rows: Row[] = [];
      for (const [seq, eventId] of keys) {
        const message = outbox.take(eventId);
        if (message !== undefined) rows.push({ seq, event_id: eventId, subject: message.subject, payload: message.payload, traceparent: message.traceparent });
      }
      if (rows.length === keys.length) return rows;
    }
    return this.statements.unpublished.all(after, this.batchSize);
  }

  /** Records a row to publish again later: after 1 s, doubling per failure up to a minute (LONGEST_RETRY_WAIT_MS). */
  private setAside(row: Row, failures: number, reason: unknown, now: number): void {
    const delay = Math.min(LONGEST_RETRY_WAIT_MS, 1000 * 2 ** Math.min(failures - 1, 6));
    this.statements.setAside.run(row.seq, failures, String(reason).slice(0, 500), now + delay);
  }

  /**
   * Publishes one row. A row written inside a trace is published in a
   * PRODUCER span of that trace, whose context travels in the message's
   * `traceparent` header to the consumers. When the process records no
   * spans, the row's own traceparent travels instead (same trace, no span
   * to make per event).
   */
  private publish(row: Row): Promise<PubAck> {
    if (row.traceparent === null || !recordsSpans()) return this.publisher.publish(this.messageOf(row, row.traceparent));
    const parent = contextFromTraceparent(row.traceparent);
    const span = tracer().startSpan(`publish ${row.subject}`, { kind: SpanKind.PRODUCER }, parent);
    if (span.isRecording()) span.setAttributes({ "messaging.system": "nats", "messaging.destination.name": row.subject, "messaging.message.id": row.event_id });
    return this.publisher.publish(this.messageOf(row, traceparentOf(span.spanContext()))).then(
      (ack) => {
        if (this.options.logger.isLevelEnabled("debug")) {
          const line = { eventId: row.event_id, requestId: requestIdIn(row.payload), subject: row.subject, streamSeq: ack.seq };
          withSpan(span, () => this.options.logger.debug(line, "event published"), parent);
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

  private messageOf(row: Row, traceparent: string | null): JetStreamMessage {
    return { subject: row.subject, payload: row.payload, msgID: row.event_id, headers: traceparent === null ? undefined : { [TRACEPARENT_HEADER]: traceparent } };
  }

  /**
   * Deletes published rows past the retention, at most once a minute. Housekeeping: a failure (the database's write
   * lock held past the busy timeout, a full or read-only disk) is logged and the prune tried again a minute later,
   * while the relay goes on publishing.
   */
  private pruneNow(): void {
    const now = this.clock();
    if (now - this.lastPrune < 60_000) return;
    try {
      this.prune(now);
    } catch (error) {
      this.lastPrune = now;
      this.options.logger.warn({ err: error }, "pruning the published outbox rows failed; tried again in a minute");
    }
  }

  private prune(now: number): void {
    const cutoff = now - this.retentionMs;
    let pruned = 0;
    let done = false;
    for (let chunk = 0, from = 0; chunk < PRUNE_CHUNKS_PER_PASS && !done; chunk++) {
      const end = this.statements.chunkEnd.get(from, this.publishedThrough, PRUNE_CHUNK) as number | null;
      const deleted = end === null ? 0 : this.statements.prune.run(from, end, cutoff).changes;
      pruned += deleted;
      // Nothing left up to the cursor, or the chunk held no old row: the rest are younger.
      done = end === null || deleted === 0;
      from = end ?? from;
    }
    // More left than one pass takes: go on at the next pass of the loop instead of in a minute.
    if (done) this.lastPrune = now;
    this.statements.pruneBatches.run(this.publishedThrough, cutoff);
    if (pruned > 0) this.options.logger.debug({ pruned }, "pruned published outbox rows");
  }
}

/** The request id an event carries (what its log lines are found by), or undefined; read only for a debug line. */
function requestIdIn(payload: Uint8Array): string | undefined {
  try {
    return decodeEvent(payload).requestId || undefined;
  } catch {
    return undefined;
  }
}
