/**
 * Event-side measurements read straight from the services' SQLite files
 * (read-only connections beside the running services; WAL lets them read
 * while the services write): the outbox relay's drain rate and the
 * commit → read-model lag.
 */
import Database from "better-sqlite3";
import { join } from "node:path";
import { unpublishedRows } from "../../shared/events/index.js";
import { percentiles } from "./stats.js";

/** A read-only connection to one of a data directory's databases. */
export function openReadOnly(dataDir: string, name: "order.db" | "query.db" | "inventory.db"): Database.Database {
  const db = new Database(join(dataDir, name), { readonly: true, fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  return db;
}

/** The highest outbox sequence number so far (rows after it are new). */
export function outboxHighWater(orderDb: Database.Database): number {
  return (orderDb.prepare("SELECT coalesce(max(seq), 0) AS s FROM outbox").get() as { s: number }).s;
}

/** Unpublished outbox rows after a sequence number. */
export function unpublishedAfter(orderDb: Database.Database, seq: number): number {
  return unpublishedRows(orderDb, seq);
}

/** Events the relay has recorded as published, in batches after a sequence number. */
export function recordedAfter(orderDb: Database.Database, seq: number): number {
  return (orderDb.prepare("SELECT coalesce(sum(events), 0) AS n FROM outbox_batches WHERE through_seq > ?").get(seq) as { n: number }).n;
}

/** The mean outbox payload size (bytes) of the latest rows. */
export function meanPayloadBytes(orderDb: Database.Database): number {
  const row = orderDb.prepare("SELECT avg(length(payload)) AS b FROM (SELECT payload FROM outbox ORDER BY seq DESC LIMIT 2000)").get() as { b: number | null };
  return Math.round(row.b ?? 400);
}

/** How fast a backlog of outbox rows was published. */
export interface DrainMeasurement {
  events: number;
  /** Batches the relay recorded. */
  batches: number;
  /** Events per second between the first and the last batch recorded (excludes reconnecting). */
  eventsPerSec: number;
  /** From NATS being ready again to the last batch recorded (ms): includes the relay's reconnect and back-off. */
  drainMs: number;
}

/**
 * The drain rate of the rows after `afterSeq`, from the relay's record of
 * its batches (outbox_batches): the rate is (rows after the first batch) /
 * (last batch's time − first batch's time).
 */
export function drainRate(orderDb: Database.Database, afterSeq: number, natsReadyAt: number): DrainMeasurement {
  const batches = orderDb
    .prepare("SELECT events, publish_time AS t FROM outbox_batches WHERE through_seq > ? ORDER BY through_seq")
    .all(afterSeq) as { events: number; t: number }[];
  const events = batches.reduce((sum, b) => sum + b.events, 0);
  const first = batches[0];
  const last = batches.at(-1);
  return {
    events,
    batches: batches.length,
    eventsPerSec: first && last && last.t > first.t ? ((events - first.events) / (last.t - first.t)) * 1000 : NaN,
    drainMs: (last?.t ?? NaN) - natsReadyAt,
  };
}

/** Commit → read-model lag of order events created in time windows (ms). */
export interface LagMeasurement {
  events: number;
  /** Events of the windows not applied by the read model when measured. */
  missing: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/**
 * Per order event created in one of `windows` (epoch ms): query.db
 * processed_events.applied_time (consumer `consumer`) minus order.db
 * outbox.create_time, joined on event_id.
 */
export function commitToReadModelLag(dataDir: string, windows: readonly { start: number; end: number }[], consumer = "query-orders"): LagMeasurement {
  const orderDb = openReadOnly(dataDir, "order.db");
  const queryDb = openReadOnly(dataDir, "query.db");
  try {
    const from = Math.min(...windows.map((w) => w.start));
    const created = (orderDb.prepare("SELECT event_id, create_time FROM outbox WHERE create_time >= ? AND subject LIKE 'orderly.orders.%'").all(from) as { event_id: string; create_time: number }[]).filter(
      (row) => windows.some((w) => row.create_time >= w.start && row.create_time <= w.end),
    );
    const applied = new Map(
      (queryDb.prepare("SELECT event_id, applied_time FROM processed_events WHERE consumer = ? AND applied_time >= ?").all(consumer, from) as {
        event_id: string;
        applied_time: number;
      }[]).map((row) => [row.event_id, row.applied_time]),
    );
    const lags: number[] = [];
    let missing = 0;
    for (const row of created) {
      const at = applied.get(row.event_id);
      if (at === undefined) missing++;
      else lags.push(at - row.create_time);
    }
    const p = percentiles(lags);
    return { events: created.length, missing, p50: p.p50, p95: p.p95, p99: p.p99, max: p.max };
  } finally {
    orderDb.close();
    queryDb.close();
  }
}

/** How many order events created since `from` the read model has not applied yet. */
export function unappliedSince(dataDir: string, from: number, consumer = "query-orders"): number {
  return commitToReadModelLag(dataDir, [{ start: from, end: Number.MAX_SAFE_INTEGER }], consumer).missing;
}
