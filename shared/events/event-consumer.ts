import { SpanKind, type Context, type Span } from "@opentelemetry/api";
import { ConsumerDebugEvents, ConsumerEvents, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from "nats";
import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { Logger } from "../logging/index.js";
import { contextFromTraceparent, endSpanWithError, withSpan } from "../observability/trace-context.js";
import { readAtMost } from "../observability/read-at-most.js";
import { untilDeadline } from "../resilience/until-deadline.js";
import { tracer } from "../observability/tracing.js";
import { storageError, untimed, type Db, type TransactionTimer } from "../sqlite/index.js";
import { TRACEPARENT_HEADER } from "./outbox-relay.js";
import { DeferredEvents, streamTimeOf, type DeferredRow } from "./deferred-events.js";
import { InvalidEvent, decodeEvent, isOfUnknownType, unknownPayloadFields } from "./event-decoding.js";

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
  /**
   * The events `handle` has nothing to do with: settled with the rest of
   * their burst, but with no savepoint and no record in the inbox (a
   * redelivery of one is ignored again, so it changes nothing either).
   */
  ignores?: (event: Event) => boolean;
  /** Deliveries of one message before it is dead-lettered. */
  maxDeliveries?: number;
  /** First redelivery delay after a failure (ms); doubles per delivery, up to 30 s. */
  retryDelayMs?: number;
  /** Messages pulled at a time. */
  batch?: number;
  /** Called after each transaction that applied an event. */
  onApplied?: (event: Event) => void;
  /** Times each burst's transaction (under the name `consume <durable>`). */
  transactions?: TransactionTimer;
  /** Makes its stream and durable consumer again, when JetStream says they are gone (deleted under it). */
  restore?: () => Promise<void>;
  /** Makes its durable consumer again where it stood when a pull reaches nothing within `probeMs` (see renewIfUnreachable); true when it did. */
  renew?: (probeMs: number) => Promise<boolean>;
  clock?: () => number;
}

/** What a consumer has done. */
export interface ConsumerStats {
  applied: number;
  skippedDuplicates: number;
  /** Events the handler ignores (see EventConsumerOptions.ignores). */
  ignored: number;
  retried: number;
  deadLettered: number;
  /** Events of a payload type this code does not know, kept in deferred_events (see EventConsumer.applyDeferred). */
  deferred: number;
}

/** Where a durable consumer stands in its stream, as JetStream reports it. */
export interface ConsumerLag {
  /** Messages in the stream not yet delivered to it. */
  pending: number;
  /** Messages delivered and not yet acked. */
  ackPending: number;
  /** Messages delivered more than once and not yet acked. */
  redelivered: number;
}

/** What became of one message of a batch: applied, ignored, skipped as a duplicate, or failed; its span ends once the batch is committed. */
interface Outcome {
  msg: JsMsg;
  event: Event | undefined;
  applied: boolean;
  ignored?: boolean;
  /** Of a payload type this code does not know: kept in deferred_events. */
  deferred?: boolean;
  error?: unknown;
  span: Span;
  parent: Context;
}

/** What nats.js says when a consumer's stream or durable consumer is gone (deleted, or lost with the server's store). */
const MISSING_RESOURCE = /consumer not found|stream not found|consumer deleted|no responders/i;

/** What JetStream sends a pull waiting at a consumer's leader when another server takes over: that pull is gone. */
const LEADERSHIP_CHANGE = /^409 leadership change$/i;

/** How long one pull for messages waits on the server (ms); JetStream sends a heartbeat every half of it. */
const PULL_EXPIRES_MS = 5000;
/**
 * Heartbeats missed in a row (one each PULL_EXPIRES_MS / 2: 10 s) after which a durable consumer that
 * JetStream still says exists is checked, and made again if a pull reaches nothing; and again after as many
 * more. nats.js pulls again at each missed heartbeat from the second on, so by then three pulls went
 * unanswered on a connection that stands.
 */
const SILENT_HEARTBEATS = 4;
/** How long the check that JetStream answers (the consumer's info) waits (ms). */
const SILENT_CHECK_MS = 2000;
/** How long the check's pull waits for an answer (ms): JetStream's own request timeout, so that a loaded server answering late is not taken for a silent consumer. */
const PULL_CHECK_MS = 5000;

/** At most this many messages in one transaction. */
const MAX_BATCH = 256;
/** How long a read of the consumer's lag waits for JetStream before the lag counts as unknown (ms). */
const LAG_READ_MS = 400;

/** At most this many messages' transaction failures are remembered (see EventConsumer.transactionFailures). */
const MAX_TRACKED_FAILURES = 10_000;
/** After how many redeliveries of one event for its consumer's own failing transaction or database that is said at error (at the growing delay, several minutes). */
const STORAGE_ERROR_AFTER = 12;
/** How often, at most, a consumer whose database fails says so at warn (ms). */
const STORAGE_WARN_EVERY_MS = 10_000;

/** An event's handler failed in a way SQLite answered by rolling back the whole transaction (disk full, I/O). */
class TransactionLost extends Error {
  override readonly name = "TransactionLost";
  constructor(readonly outcome: Outcome) {
    super("an event's failure rolled back its whole transaction", { cause: outcome.error });
  }
}

/** The events kept as of an unknown type are logged: the first, and then each time this many more were kept. */
const DEFERRED_LOG_EVERY = 100;

/** Kept events applied at a start between two turns of the event loop (see applyDeferred). */
const DEFERRED_TURN = 100;

/** A dead_letters row: the message (its stream, sequence and time, subject, raw payload), its event's id when it decoded, and why. */
interface DeadLetter {
  consumer: string;
  stream: string;
  streamSeq: number;
  streamTime: number;
  subject: string;
  eventId: string | null;
  deliveries: number;
  reason: string;
  payload: Buffer;
  now: number;
}

/** The handler's failure, told apart from one of the transaction around it (see EventConsumer.applyKept). */
class HandlerFailed extends Error {
  override readonly name = "HandlerFailed";
  constructor(override readonly cause: unknown) {
    super("the handler failed", { cause });
  }
}

/** What a dead letter and a log line say of a failure. */
function reasonOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** The CONSUMER span an event is applied in, child of the publish span its `traceparent` names (without one, a new trace). */
function consumerSpan(subject: string, traceparent: string | undefined, durable: string): { span: Span; parent: Context } {
  const parent = contextFromTraceparent(traceparent);
  const span = tracer().startSpan(`process ${subject}`, { kind: SpanKind.CONSUMER }, parent);
  if (span.isRecording()) span.setAttributes({ "messaging.system": "nats", "messaging.destination.name": subject, "messaging.consumer.group.name": durable });
  return { span, parent };
}

/**
 * Whether a consumer's database records anything it took: an event applied
 * (recorded with its effect), dead-lettered or kept (deferred_events). An
 * event acked unrecorded (one the consumer ignores) leaves no trace, and had
 * nothing to apply.
 */
export function hasRecordsOf(db: Db, durable: string): boolean {
  const found = db
    .prepare<{ durable: string }, { one: number }>(
      `SELECT 1 AS one FROM processed_events WHERE consumer = @durable
       UNION ALL SELECT 1 FROM dead_letters WHERE consumer = @durable
       UNION ALL SELECT 1 FROM deferred_events WHERE consumer = @durable LIMIT 1`,
    )
    .get({ durable });
  return found !== undefined;
}

/**
 * A durable JetStream pull consumer with explicit outcomes: each event is
 * applied and its id recorded in one SQLite transaction, then acked (a
 * redelivery finds the id and changes nothing); an event the handler
 * ignores is acked unrecorded; a failure is nak'ed with a
 * growing delay; after `maxDeliveries` (or at once, for an InvalidEvent) the
 * message is recorded in dead_letters with the reason and terminated, so it
 * does not stall the rest. An event of a payload type this code does not know
 * is kept in deferred_events and acked, and applied at the start of a
 * consumer that knows it (applyDeferred).
 *
 * The messages delivered in one turn of the event loop (a burst: nats.js
 * hands over what one read of its socket holds) share a transaction, each
 * event in a savepoint of its own, so a failing event undoes only itself;
 * nothing is acked before the commit. A commit costs more than applying an
 * event does; should the shared transaction itself fail, each message gets
 * a transaction of its own.
 */
export class EventConsumer {
  private readonly statements;
  private readonly applyTx;
  private readonly applyBatch;
  private readonly applyKeptTx;
  private readonly deadLetterKept;
  /** The events it keeps, of a payload type its code does not know. */
  private readonly deferred: DeferredEvents;
  /** Kept events, of a type known now, whose handler failed: tried again after a delay (see failKept). */
  private readonly keptFailures = new Map<string, { row: DeferredRow; tries: number }>();
  /** The timer of the next retry pass over keptFailures, set until that pass has ended. */
  private keptRetry: NodeJS.Timeout | undefined;
  /** A retry pass in flight; close() waits for it. */
  private keptRetrying: Promise<void> | undefined;
  private readonly maxDeliveries: number;
  private readonly retryDelayMs: number;
  /** Set when a leader change or a renewal ended the consumption: the loop consumes again without a pause. */
  private pullNow = false;
  private readonly clock: () => number;
  private readonly transactions: TransactionTimer;
  private readonly txName: string;
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** A renewal of the durable consumer in flight (see renewIfSilent); close() waits for it. */
  private renewal: Promise<void> | undefined;
  /** Messages applied and committed, acked together once the messages already delivered are processed. */
  private readonly unacked: JsMsg[] = [];
  /** Messages delivered in this turn of the event loop, applied together at its end. */
  private readonly pending: JsMsg[] = [];
  /**
   * Deliveries of a message (by stream sequence) that came back because the consumer's own
   * transaction failed (BEGIN or COMMIT), not the handler: JetStream counts them, dead-lettering
   * does not. Kept in memory (after a restart they count again), and forgotten once the message is
   * settled, or all at once past MAX_TRACKED_FAILURES (messages that never came back).
   */
  private readonly transactionFailures = new Map<number, number>();
  /** While the consumer's own transactions or database fail: since when, for how many events, and what was said (databaseFailed). */
  private databaseFailing: { since: number; events: number; warnedAt: number; reported: boolean } | undefined;
  readonly stats: ConsumerStats = { applied: 0, skippedDuplicates: 0, ignored: 0, retried: 0, deadLettered: 0, deferred: 0 };

  constructor(private readonly options: EventConsumerOptions) {
    const { db, durable } = options;
    this.maxDeliveries = options.maxDeliveries ?? 5;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.clock = options.clock ?? Date.now;
    this.transactions = options.transactions ?? untimed;
    this.txName = `consume ${durable}`;
    this.statements = {
      seen: db.prepare<[string, string], { one: number }>("SELECT 1 AS one FROM processed_events WHERE consumer = ? AND event_id = ?"),
      record: db.prepare<[string, string, number]>("INSERT INTO processed_events (consumer, event_id, applied_time) VALUES (?, ?, ?)"),
      deadLetters: db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM dead_letters WHERE consumer = ?"),
      deadLetter: db.prepare<DeadLetter>(
        `INSERT OR IGNORE INTO dead_letters (consumer, stream, stream_seq, stream_time, subject, event_id, deliveries, reason, payload, create_time)
         VALUES (@consumer, @stream, @streamSeq, @streamTime, @subject, @eventId, @deliveries, @reason, @payload, @now)`,
      ),
    };
    this.deferred = new DeferredEvents(db, durable);
    this.applyTx = db.transaction((event: Event, subject: string): boolean => {
      if (this.statements.seen.get(durable, event.eventId)) return false;
      options.handle(event, subject);
      this.statements.record.run(durable, event.eventId, this.clock());
      return true;
    });
    this.applyKeptTx = db.transaction((event: Event, row: DeferredRow): "applied" | "ignored" | "duplicate" => {
      let done: "applied" | "ignored" | "duplicate";
      try {
        done = options.ignores?.(event) ? "ignored" : this.applyTx(event, row.subject) ? "applied" : "duplicate";
      } catch (error) {
        throw new HandlerFailed(error);
      }
      this.deferred.remove(row.event_id);
      return done;
    });
    this.deadLetterKept = db.transaction((row: DeferredRow, deliveries: number, reason: string) => {
      this.recordDeadLetter({ stream: row.stream, streamSeq: row.stream_seq, streamTime: row.stream_time, subject: row.subject, eventId: row.event_id, deliveries, reason, payload: row.payload });
      this.deferred.remove(row.event_id);
    });
    this.applyBatch = db.transaction((batch: readonly JsMsg[], outcomes: Outcome[]) => {
      for (const msg of batch) {
        const outcome = this.apply(msg);
        outcomes.push(outcome);
        // An error SQLite answers by rolling back the whole transaction (disk full, I/O): none of the batch stands.
        if (outcome.error !== undefined && !db.inTransaction) throw new TransactionLost(outcome);
      }
    });
  }

  /** The durable consumer's name. */
  get durable(): string {
    return this.options.durable;
  }

  /**
   * Its backlog and redeliveries, asked of JetStream: undefined before it
   * first reached its consumer, rejected while JetStream cannot answer.
   * One request answers every caller for a second: a scrape reads three
   * gauges from it, and the status report reads it again.
   */
  readonly lag: () => Promise<ConsumerLag | undefined> = readAtMost(1000, () => this.readLag());

  private async readLag(): Promise<ConsumerLag | undefined> {
    if (this.consumer === undefined) return undefined;
    // Not a JetStream request's 5 s: status reports and scrapes must answer while NATS is down (the gateway's status page waits 1 s).
    const info = await untilDeadline(this.consumer.info(), Date.now() + LAG_READ_MS, "the consumer's info from JetStream");
    return { pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
  }

  /** How many messages it has dead-lettered (all time, from its database). */
  deadLetterCount(): number {
    return this.statements.deadLetters.get(this.options.durable)?.n ?? 0;
  }

  /** How many events of a payload type this code does not know it keeps (see applyDeferred). */
  deferredCount(): number {
    return this.deferred.count();
  }

  /** Applies the events kept for a newer code (applyDeferred), then consumes in the background; reconnects and resumes on its own. */
  start(): void {
    this.running ??= this.applyDeferred().then(() => this.loop());
  }

  /**
   * Applies the events kept in deferred_events whose payload type this code
   * knows now (at its first start after an upgrade), in the order the stream
   * stored them, before consuming: each with its inbox record and the
   * removal of its row in one transaction, the event loop let run between
   * every DEFERRED_TURN of them. A failure is handled as a delivered
   * event's is (failKept); those of a type still unknown stay.
   */
  private async applyDeferred(): Promise<void> {
    const { durable, logger } = this.options;
    let applied = 0;
    try {
      await this.eachInTurns(this.deferred.rows(), (row) => {
        if (this.applyKept(row, 1)) applied++;
      });
    } catch (error) {
      logger.error({ err: error, durable }, "could not read the events kept as of an unknown type; they are read again at the next start");
    }
    if (applied > 0) logger.info({ durable, applied, kept: this.deferredCount() }, "applied events kept as of a payload type an older version did not know");
  }

  /** Applies a kept event if this code knows its type now (its `tries`-th time); true when it was applied. */
  private applyKept(row: DeferredRow, tries: number): boolean {
    let event: Event;
    try {
      event = decodeEvent(row.payload);
    } catch (error) {
      this.failKept(row, undefined, error, tries);
      return false;
    }
    if (isOfUnknownType(event)) return false;
    const { span, parent } = consumerSpan(row.subject, row.traceparent ?? undefined, this.options.durable);
    let done: "applied" | "ignored" | "duplicate";
    try {
      done = withSpan(span, () => this.transactions.run(this.txName, () => this.applyKeptTx.immediate(event, row)), parent);
    } catch (error) {
      // A failure of the consumer's own transaction (BEGIN or COMMIT: the database locked, say) is not a try of the handler's.
      const handlerFailed = error instanceof HandlerFailed;
      const cause = handlerFailed ? error.cause : error;
      withSpan(span, () => this.failKept(row, event, cause, handlerFailed ? tries : tries - 1), parent);
      endSpanWithError(span, cause);
      return false;
    }
    span.end();
    if (done === "applied") {
      this.stats.applied++;
      this.databaseWorks();
      this.options.onApplied?.(event);
    } else if (done === "ignored") this.stats.ignored++;
    else this.stats.skippedDuplicates++;
    return done === "applied";
  }

  /**
   * A kept event that failed, as a delivered one would: tried again after
   * the growing delay, and dead-lettered after maxDeliveries tries (at once,
   * an InvalidEvent). Tries are counted in memory (a restart tries anew), for
   * at most MAX_TRACKED_FAILURES events at a time: one past that is left
   * for the next start.
   */
  private failKept(row: DeferredRow, event: Event | undefined, error: unknown, tries: number): void {
    const reason = reasonOf(error);
    const which = { durable: this.options.durable, seq: row.stream_seq, subject: row.subject, eventId: row.event_id, requestId: event?.requestId };
    // The database failing under the handler is not the event's fault: tried again (at the growing delay), never dead-lettered
    // for it, and said for the episode, not for each event (databaseFailed).
    const database = storageError(error) !== undefined;
    if (!(error instanceof InvalidEvent) && (tries < this.maxDeliveries || database)) {
      this.stats.retried++;
      if (this.keptFailures.size >= MAX_TRACKED_FAILURES) {
        this.options.logger.warn({ ...which, deliveries: tries, reason }, "event failed; kept for the next start (too many kept events are failing to try them all again now)");
        return;
      }
      const delay = this.retryDelay(Math.max(tries, 1));
      this.keptFailures.set(row.event_id, { row, tries });
      if (database) this.databaseFailed(error, 1, tries);
      else this.options.logger.warn({ ...which, deliveries: tries, reason, delay }, "event failed; will retry");
      this.retryKeptAfter(delay);
      return;
    }
    try {
      this.deadLetterKept.immediate(row, tries, reason);
    } catch (recordError) {
      this.options.logger.error({ ...which, err: recordError }, "could not dead-letter a kept event; it is tried again at the next start");
      return;
    }
    this.stats.deadLettered++;
    this.options.logger.error({ ...which, deliveries: tries, reason }, "event dead-lettered");
  }

  /** Tries the kept events that failed again once `delay` has passed: one pass at a time, for all of them. */
  private retryKeptAfter(delay: number): void {
    if (this.keptRetry !== undefined || this.stopped) return;
    this.keptRetry = setTimeout(() => void (this.keptRetrying = this.retryKept()), delay);
  }

  /** One pass over the kept events that failed, letting the event loop run as applyDeferred does; then the next, if some failed again. */
  private async retryKept(): Promise<void> {
    await this.eachInTurns([...this.keptFailures.values()], ({ row, tries }) => {
      this.keptFailures.delete(row.event_id);
      this.applyKept(row, tries + 1);
    });
    this.keptRetry = undefined;
    this.keptRetrying = undefined;
    if (this.keptFailures.size === 0) return;
    const fewest = Math.min(...[...this.keptFailures.values()].map((failure) => failure.tries));
    this.retryKeptAfter(this.retryDelay(Math.max(fewest, 1)));
  }

  /** Calls `apply` for each item until the consumer stops, letting the event loop run between every DEFERRED_TURN of them. */
  private async eachInTurns<T>(items: Iterable<T>, apply: (item: T) => void): Promise<void> {
    let done = 0;
    for (const item of items) {
      if (this.stopped) return;
      apply(item);
      if (++done % DEFERRED_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Consumes anew from its durable consumer: for one made again (a NATS server back with an empty
   * store), whose subscription still pulls from the one that is gone and never hears of the new one.
   */
  resubscribe(): void {
    this.messages?.stop();
  }

  /** Stops pulling; the messages in hand are finished first. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.keptRetry);
    this.messages?.stop();
    await this.running;
    await this.keptRetrying;
    // Not cut between its delete and its add: made again from the stream's first event at the next start otherwise.
    await this.renewal;
    this.processPending();
    this.ackApplied();
  }

  /**
   * Acks a message whose effect is committed, with the others processed in
   * the same turn of the event loop: nats.js writes to its socket once per
   * turn, so a burst of messages costs one write for its acks, not one each.
   * A crash before the ack only redelivers what the inbox then skips.
   */
  private ackLater(msg: JsMsg): void {
    if (this.unacked.push(msg) === 1) setImmediate(() => this.ackApplied());
  }

  private ackApplied(): void {
    for (const msg of this.unacked.splice(0)) msg.ack();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const consumer = await this.options.js.consumers.get(this.options.stream, this.options.durable);
        this.consumer = consumer;
        // Told, rather than pulling on quietly from a consumer that is no more (nats.js's default): it is made again.
        // A consumer gone without a word (made again by a restore racing the deletion of its stream, say) is found by
        // two missed heartbeats: with pulls that expire after PULL_EXPIRES_MS, within seconds rather than 30.
        this.messages = await consumer.consume({ max_messages: this.options.batch ?? 256, expires: PULL_EXPIRES_MS, abort_on_missing_resource: true });
        if (this.stopped) this.messages.stop();
        void this.watch(this.messages);
        for await (const msg of this.messages) {
          failures = 0;
          this.receive(msg);
        }
      } catch (error) {
        if (this.stopped) break;
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err: error, durable: this.options.durable }, "consumer interrupted; resuming");
        if (MISSING_RESOURCE.test(String(error))) await this.options.restore?.();
      }
      // A pull the leader's move dropped, or one from a renewed consumer, is made at once; anything else after a pause that grows with the failures.
      if (this.pullNow) this.pullNow = false;
      else if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** Math.min(failures, 5))));
    }
  }

  /**
   * Consumes anew when JetStream says the consumer's leader changed: nats.js only reports it, and
   * pulls again after two missed heartbeats, so the events published meanwhile waited ~5 s. And
   * makes the durable consumer again when its pulls go unanswered while JetStream says it exists
   * and a pull to it reaches nothing (see renewIfUnreachable): nats.js would pull on, unanswered, for good.
   */
  private async watch(messages: ConsumerMessages): Promise<void> {
    // Ends when the messages are stopped.
    for await (const status of await messages.status()) {
      if (status.type === ConsumerDebugEvents.DebugEvent && LEADERSHIP_CHANGE.test(String(status.data))) {
        this.options.logger.info({ durable: this.options.durable }, "the consumer's leader changed; pulling from the new one");
        this.pullNow = true;
        messages.stop();
      } else if (status.type === ConsumerEvents.HeartbeatsMissed && Number(status.data) % SILENT_HEARTBEATS === 0 && this.renewal === undefined && this.options.renew) {
        this.renewal = this.renewIfSilent(messages, Number(status.data), this.options.renew).finally(() => (this.renewal = undefined));
      }
    }
  }

  /**
   * Makes the durable consumer again and consumes anew when JetStream answers that it exists and a pull
   * reaches nothing: a server that does not answer (hung, or a cluster without a leader for it) is not
   * what this mends, and a consumer whose pulls are answered (its leader back) is left as it is.
   */
  private async renewIfSilent(messages: ConsumerMessages, missed: number, renew: (probeMs: number) => Promise<boolean>): Promise<void> {
    const consumer = this.consumer;
    if (consumer === undefined || this.stopped) return;
    try {
      await untilDeadline(consumer.info(), Date.now() + SILENT_CHECK_MS, "the consumer's info from JetStream");
    } catch {
      return;
    }
    if (this.stopped || this.messages !== messages) return;
    try {
      if (!(await renew(PULL_CHECK_MS))) return;
    } catch (error) {
      this.options.logger.warn({ err: error, durable: this.options.durable }, "making the durable consumer again failed");
      return;
    }
    const silentMs = (missed * PULL_EXPIRES_MS) / 2;
    this.options.logger.warn({ durable: this.options.durable, silentMs }, "JetStream said this durable consumer exists, but a pull reached nothing: made it again where it stood");
    if (this.messages !== messages) return;
    this.pullNow = true;
    messages.stop();
  }

  /** Queues a delivered message for the batch applied at the end of this turn of the event loop. */
  private receive(msg: JsMsg): void {
    const queued = this.pending.push(msg);
    if (queued === 1) setImmediate(() => this.processPending());
    else if (queued >= MAX_BATCH) this.processPending();
  }

  /** Applies the messages queued; runs from setImmediate, so nothing may throw out of it. */
  private processPending(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending.splice(0);
    try {
      this.process(batch);
    } catch (error) {
      this.options.logger.error({ err: error, durable: this.options.durable, count: batch.length }, "a burst could not be settled; what was not acked comes back after its ack wait");
    }
  }

  /** Applies messages in one transaction, then acks, naks or dead-letters each by its outcome. */
  private process(batch: readonly JsMsg[]): void {
    const outcomes: Outcome[] = [];
    try {
      this.transactions.run(this.txName, () => this.applyBatch.immediate(batch, outcomes));
    } catch (error) {
      // Nothing of the transaction was committed.
      if (error instanceof TransactionLost && batch.length === 1) return this.settle(error.outcome);
      for (const { span } of outcomes) endSpanWithError(span, error instanceof TransactionLost ? error.outcome.error : error);
      if (error instanceof TransactionLost) {
        // One event's failure undid the whole batch: each message again in a transaction of its own, so only that one fails.
        for (const msg of batch) this.process([msg]);
      } else {
        // BEGIN or COMMIT failed (the database locked, full or failing): no event is to blame, so none of them
        // comes nearer to being dead-lettered; all come back after a delay.
        this.redeliverLater(batch, error);
      }
      return;
    }
    for (const outcome of outcomes) {
      try {
        this.settle(outcome);
      } catch (error) {
        // A nak, term or dead-letter record that failed: that message comes back after its ack wait; the rest are settled.
        this.options.logger.error({ err: error, durable: this.options.durable, seq: outcome.msg.info.streamSequence }, "could not settle an event; it will be redelivered");
      }
    }
  }

  private redeliverLater(batch: readonly JsMsg[], error: unknown): void {
    this.stats.retried += batch.length;
    if (this.transactionFailures.size + batch.length > MAX_TRACKED_FAILURES) this.transactionFailures.clear();
    let most = 0;
    for (const msg of batch) {
      const seq = msg.info.streamSequence;
      const failures = (this.transactionFailures.get(seq) ?? 0) + 1;
      this.transactionFailures.set(seq, failures);
      most = Math.max(most, failures);
      msg.nak(this.retryDelay(msg.info.deliveryCount));
    }
    this.databaseFailed(error, batch.length, most);
  }

  /**
   * Says that the consumer's own transaction or database failed for `count`
   * events (the most-tried of them tried `tries` times), for a whole episode
   * of failing rather than each event: a warning at most every
   * STORAGE_WARN_EVERY_MS with the events since, and, once one event has
   * come back STORAGE_ERROR_AFTER times (minutes, at the growing delay), one
   * error: never dead-lettered for it, its events wait for good, for an
   * operator to look at the storage. The next event applied ends it.
   */
  private databaseFailed(error: unknown, count: number, tries: number): void {
    const now = this.clock();
    const episode = (this.databaseFailing ??= { since: now, events: 0, warnedAt: -Infinity, reported: false });
    episode.events += count;
    const fields = { err: error, durable: this.options.durable, events: episode.events, failingMs: now - episode.since };
    if (!episode.reported && tries >= STORAGE_ERROR_AFTER) {
      episode.reported = true;
      this.options.logger.error(fields, "the consumer's database keeps failing: its events wait until it works again (is its disk full, or read-only?)");
    } else if (now - episode.warnedAt >= STORAGE_WARN_EVERY_MS) {
      episode.warnedAt = now;
      this.options.logger.warn(fields, "the consumer's transaction or database failed; its events will be redelivered");
    }
  }

  /** An event applied: a failing of the consumer's database, if any, is over. */
  private databaseWorks(): void {
    if (this.databaseFailing === undefined) return;
    if (this.databaseFailing.reported) this.options.logger.info({ durable: this.options.durable, failedMs: this.clock() - this.databaseFailing.since }, "the consumer's database works again");
    this.databaseFailing = undefined;
  }

  private retryDelay(deliveries: number): number {
    return Math.min(30_000, this.retryDelayMs * 2 ** (deliveries - 1));
  }

  /**
   * Decodes and applies one message, inside the batch's transaction, in a
   * CONSUMER span, child of the publish span named by its `traceparent`
   * header (a message without one starts a new trace), so the effect and its
   * log lines join the trace of the change that caused it.
   */
  private apply(msg: JsMsg): Outcome {
    const traceparent = msg.headers?.get(TRACEPARENT_HEADER) || undefined;
    const { span, parent } = consumerSpan(msg.subject, traceparent, this.options.durable);
    let event: Event | undefined;
    try {
      event = decodeEvent(msg.data);
      if (isOfUnknownType(event)) return { msg, event, applied: false, deferred: this.defer(msg, event), span, parent };
      if (this.options.ignores?.(event)) return { msg, event, applied: false, ignored: true, span, parent };
      const decoded = event;
      // A transaction inside the batch's: a savepoint, rolled back alone when the handler throws.
      const applied = withSpan(span, () => this.applyTx(decoded, msg.subject), parent);
      return { msg, event, applied, span, parent };
    } catch (error) {
      return { msg, event, applied: false, error, span, parent };
    }
  }

  /**
   * Keeps an event of a payload type this code does not know in
   * deferred_events, inside the batch's transaction; false for a duplicate:
   * one kept already, or applied (by a newer version since rolled back).
   */
  private defer(msg: JsMsg, event: Event): boolean {
    return !this.statements.seen.get(this.options.durable, event.eventId) && this.deferred.keep(msg, event.eventId, this.clock());
  }

  /** After the commit: acks what was applied, skipped or deferred, fails the rest, ends each span. */
  private settle({ msg, event, applied, ignored, deferred, error, span, parent }: Outcome): void {
    if (this.transactionFailures.size > 0 && error === undefined) this.transactionFailures.delete(msg.info.streamSequence);
    if (error !== undefined) {
      withSpan(span, () => this.fail(msg, event, error), parent);
      endSpanWithError(span, error);
      return;
    }
    if (applied && event !== undefined) {
      this.stats.applied++;
      this.databaseWorks();
      if (this.options.logger.isLevelEnabled("debug")) {
        withSpan(span, () => this.options.logger.debug({ durable: this.options.durable, eventId: event.eventId, subject: msg.subject, requestId: event.requestId }, "event applied"), parent);
      }
      this.options.onApplied?.(event);
    } else if (ignored) {
      this.stats.ignored++;
    } else if (deferred && event !== undefined) {
      if (this.stats.deferred++ % DEFERRED_LOG_EVERY === 0) {
        // In the event's span, as the other lines about an event are: the line carries the trace of the change that caused it.
        withSpan(span, () => this.options.logger.warn(
          {
            durable: this.options.durable,
            seq: msg.info.streamSequence,
            subject: msg.subject,
            eventId: event.eventId,
            requestId: event.requestId,
            fields: unknownPayloadFields(event),
            deferred: this.stats.deferred,
          },
          "an event of a payload type this consumer does not know (a newer version's) is kept in its database until a consumer that knows the type starts: upgrade this service",
        ), parent);
      }
    } else {
      this.stats.skippedDuplicates++;
    }
    this.ackLater(msg);
    span.end();
  }

  private fail(msg: JsMsg, event: Event | undefined, error: unknown): void {
    // The database failing under the handler (the disk full, files it cannot open) is no more the event's fault than a
    // BEGIN or COMMIT that fails: it comes back after a delay, without coming nearer to being dead-lettered.
    if (storageError(error) !== undefined) return this.redeliverLater([msg], error);
    // The handler's own failures: deliveries that came back after a failed transaction of the consumer's are not its.
    const deliveries = msg.info.deliveryCount - (this.transactionFailures.get(msg.info.streamSequence) ?? 0);
    const reason = reasonOf(error);
    // What a log line needs to find the event, and the request that caused it (an event that did not decode has neither).
    const which = { durable: this.options.durable, seq: msg.info.streamSequence, subject: msg.subject, eventId: event?.eventId, requestId: event?.requestId };
    if (deliveries >= this.maxDeliveries || error instanceof InvalidEvent) {
      this.recordDeadLetter({
        stream: msg.info.stream,
        streamSeq: msg.info.streamSequence,
        streamTime: streamTimeOf(msg),
        subject: msg.subject,
        eventId: event?.eventId || null,
        deliveries,
        reason,
        payload: Buffer.from(msg.data),
      });
      // No reason with the +TERM: nats-server 2.9 takes only a bare "+TERM" (a reason came in 2.10) and ignores
      // anything else, so the message stayed pending and came back every ack wait. The reason is in dead_letters.
      msg.term();
      this.transactionFailures.delete(msg.info.streamSequence);
      this.stats.deadLettered++;
      this.options.logger.error({ ...which, deliveries, reason }, "event dead-lettered");
      return;
    }
    this.stats.retried++;
    const delay = this.retryDelay(deliveries);
    this.options.logger.warn({ ...which, deliveries, reason, delay }, "event failed; will retry");
    msg.nak(delay);
  }

  /** Records a message in dead_letters with why (kept once, however often it comes). */
  private recordDeadLetter(letter: Omit<DeadLetter, "consumer" | "now">): void {
    this.statements.deadLetter.run({ ...letter, consumer: this.options.durable, now: this.clock() });
  }
}
