import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderSchema, OrderStatus, type Order } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { InvalidEvent, type EventHandler } from "../../shared/events/index.js";
import type { Logger } from "../../shared/logging/index.js";
import type { Db } from "../../shared/sqlite/index.js";

interface ViewHead {
  version: number;
  status: number;
  confirmed_day: string | null;
  order_pb: Buffer;
}

/**
 * The version an event gives its aggregate, once it is sure to be one the
 * read models can hold: of the aggregate whose snapshot it carries, and a
 * whole number from 1 to 2^53 - 1 (what a row and a reply carry exactly). A
 * version past it would stand above every later change, for good.
 */
function versionOf(event: Event, snapshotId: string): number {
  if (event.aggregateId !== snapshotId) throw new InvalidEvent(`event ${event.eventId} is of ${JSON.stringify(event.aggregateId)} but carries the snapshot of ${JSON.stringify(snapshotId)}`);
  const version = event.aggregateVersion;
  if (version < 1n || version > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidEvent(`event ${event.eventId} gives its aggregate the version ${version}, outside 1 to 2^53 - 1`);
  return Number(version);
}

/** How many aggregates with two histories a projector names before it stops naming more (each named once). */
const MAX_TOLD = 1000;

/** The UTC day (YYYY-MM-DD) of an epoch-ms time. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Applies events to the read models. Every event carries the aggregate's
 * snapshot and version, so an event older than what a view holds is
 * ignored (out-of-order deliveries converge on the latest state), and
 * replaying the streams from the start yields the same rows.
 *
 * An aggregate's versions are one history, so a new event (the consumer has
 * skipped those it applied) at a version held already is either a late one of
 * that history, or of a second history written over the first: a database
 * of the order or inventory service put back from an older copy alone, whose
 * versions start again below those the read models hold (README: Backup and
 * restore). The read models keep the first and ignore the second; that is
 * said at error, once per aggregate, when the event's own record shows it is
 * the second: a change of an order at a version held with another status, a
 * stock change later than the one held at a higher version (the inventory
 * keeps an item's update time from going back, so a late event of the one
 * history is never later).
 */
export class Projector {
  private readonly statements;
  /** Aggregates found with two histories, said once each (the first MAX_TOLD). */
  private readonly told = new Set<string>();
  /** Adds a confirmed order to its day's sales, all its lines or none (a savepoint in the event's transaction). */
  private readonly addConfirmedSales: (order: Order, day: string) => void;

  constructor(
    db: Db,
    private readonly logger: Logger,
  ) {
    this.addConfirmedSales = db.transaction((order: Order, day: string) => this.addSales(order, day, 1));
    this.statements = {
      viewHead: db.prepare<[string], ViewHead>("SELECT version, status, confirmed_day, order_pb FROM order_views WHERE id = ?"),
      upsertView: db.prepare(
        `INSERT INTO order_views (id, customer_id, status, version, create_time, update_time, confirmed_day, order_pb)
         VALUES (@id, @customerId, @status, @version, @createTime, @updateTime, @confirmedDay, @orderPb)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version, update_time = excluded.update_time,
           confirmed_day = excluded.confirmed_day, order_pb = excluded.order_pb`,
      ),
      timeline: db.prepare<[string, number, number, number]>(
        "INSERT OR IGNORE INTO order_timeline (order_id, version, status, change_time) VALUES (?, ?, ?, ?)",
      ),
      timelineStatus: db.prepare<[string, number], { status: number }>("SELECT status FROM order_timeline WHERE order_id = ? AND version = ?"),
      addSales: db.prepare(
        `INSERT INTO daily_sales (day, sku, currency_code, units, revenue_minor) VALUES (@day, @sku, @currency, @units, @revenue)
         ON CONFLICT (day, sku, currency_code) DO UPDATE SET units = units + excluded.units, revenue_minor = revenue_minor + excluded.revenue_minor`,
      ),
      dropEmptySales: db.prepare<[string, string, string]>("DELETE FROM daily_sales WHERE day = ? AND sku = ? AND currency_code = ? AND units = 0"),
      stockVersion: db.prepare<[string], { version: number; update_time: number }>("SELECT version, update_time FROM stock_levels WHERE sku = ?"),
      upsertStock: db.prepare(
        `INSERT INTO stock_levels (sku, name, available, reserved, version, update_time) VALUES (@sku, @name, @available, @reserved, @version, @updateTime)
         ON CONFLICT (sku) DO UPDATE SET name = excluded.name, available = excluded.available, reserved = excluded.reserved,
           version = excluded.version, update_time = excluded.update_time`,
      ),
    };
  }

  /** The handler for every Orderly event (order and inventory streams). */
  readonly handle: EventHandler = (event) => {
    switch (event.payload.case) {
      case "orderCreated":
      case "orderConfirmed":
      case "orderRejected":
      case "orderCancelled":
        if (event.payload.value.order) this.applyOrder(event, event.payload.value.order);
        return;
      case "stockRestocked":
      case "stockReserved":
      case "stockReleased":
        if (event.payload.value.item) this.applyStock(event, event.payload.value.item);
        return;
      case "reservationSucceeded":
      case "reservationFailed":
        // Outcomes of the async reservation path: the order events that follow carry their effect.
        return;
      default:
        throw new InvalidEvent(`event ${event.eventId} has no payload this projector knows`);
    }
  };

  private applyOrder(event: Event, order: Order): void {
    const version = versionOf(event, order.id);
    const changeTime = order.updateTime ? timestampMs(order.updateTime) : 0;
    if (this.statements.timeline.run(order.id, version, order.status, changeTime).changes === 0) {
      const held = this.statements.timelineStatus.get(order.id, version)?.status;
      if (held !== undefined && held !== order.status) {
        this.secondHistory(event, "order", `its version ${version} is held with status ${OrderStatus[held]}, and this event gives it ${OrderStatus[order.status]}`, "the order service");
      }
    }
    const head = this.statements.viewHead.get(order.id);
    if (head && head.version >= version) return;
    if (head?.status === OrderStatus.CONFIRMED && head.confirmed_day) {
      this.addSales(fromBinary(OrderSchema, head.order_pb), head.confirmed_day, -1);
    }
    const confirmedDay = order.status === OrderStatus.CONFIRMED ? this.countSales(order, utcDay(changeTime)) : null;
    this.statements.upsertView.run({
      id: order.id,
      customerId: order.customerId,
      status: order.status,
      version,
      createTime: order.createTime ? timestampMs(order.createTime) : 0,
      updateTime: changeTime,
      confirmedDay,
      orderPb: toBinary(OrderSchema, order),
    });
  }

  /**
   * Adds a confirmed order to the sales of `day`, and answers the day it is
   * counted in (which a cancel takes it out of): none when a line would take
   * its day's revenue past the int64 range (the triggers of schema.ts, the
   * only ones on daily_sales). Such an order is left out of the sales, said
   * in the log, rather than fail its event (its view and timeline would stop)
   * or make the day's row a float. Which order of such a day is left out
   * depends on the order the events were applied in.
   */
  private countSales(order: Order, day: string): string | null {
    try {
      this.addConfirmedSales(order, day);
      return day;
    } catch (error) {
      if ((error as { code?: unknown }).code !== "SQLITE_CONSTRAINT_TRIGGER") throw error;
      this.logger.error({ orderId: order.id, day }, "a confirmed order is left out of the daily sales: it would take a day's revenue past the int64 range");
      return null;
    }
  }

  private addSales(order: Order, day: string, sign: 1 | -1): void {
    for (const item of order.items) {
      const row = { day, sku: item.sku, currency: order.currencyCode, units: sign * item.quantity, revenue: BigInt(sign) * item.lineTotalMinor };
      this.statements.addSales.run(row);
      if (sign < 0) this.statements.dropEmptySales.run(day, item.sku, order.currencyCode);
    }
  }

  private applyStock(event: Event, item: { sku: string; name: string; available: number; reserved: number; updateTime?: { seconds: bigint; nanos: number } }): void {
    const version = versionOf(event, item.sku);
    const updateTime = item.updateTime ? timestampMs(item.updateTime as never) : 0;
    const current = this.statements.stockVersion.get(item.sku);
    if (current && current.version >= version) {
      if (updateTime > current.update_time) {
        const when = (ms: number) => new Date(ms).toISOString();
        this.secondHistory(event, "stock", `this event gives it version ${version} at ${when(updateTime)}, later than version ${current.version} held (${when(current.update_time)})`, "the inventory service");
      }
      return;
    }
    this.statements.upsertStock.run({ sku: item.sku, name: item.name, available: item.available, reserved: item.reserved, version, updateTime });
  }

  /** Says at error, once per aggregate, that an event of `kind` is of a second history (see the class comment), which is ignored. */
  private secondHistory(event: Event, kind: "order" | "stock", why: string, owner: string): void {
    const key = `${kind} ${event.aggregateId}`;
    if (this.told.has(key) || this.told.size >= MAX_TOLD) return;
    this.told.add(key);
    this.logger.error(
      { aggregateId: event.aggregateId, eventId: event.eventId, kind },
      `two histories of one ${kind === "order" ? "order" : "SKU's stock"}: ${why}. The read models keep the first and ignore this one's changes ` +
        `until its versions pass those held; was ${owner}'s database put back from an older copy alone? (README: Backup and restore)`,
    );
  }
}
