import { OrderlyError, validationError } from "../../shared/errors/index.js";
import { newEvent, type EventMeta, type Outbox } from "../../shared/events/index.js";
import { boundLimit, untimed, type Db, type TransactionTimer } from "../../shared/sqlite/index.js";
import { itemMessage } from "./messages.js";

/** An item as stored. */
export interface ItemRecord {
  sku: string;
  name: string;
  unitPriceMinor: number;
  currencyCode: string;
  available: number;
  reserved: number;
  createTime: number;
  updateTime: number;
  version: number;
}

/** One reserved line, with the unit price captured when reserved. */
export interface ReservedLine {
  sku: string;
  quantity: number;
  unitPriceMinor: number;
  /** The item's version once the reservation took its stock or, released, once the release returned it (absent in a reservation stored before it was kept). */
  itemVersion?: number;
}

/** Reservation states, as stored (the values of orderly.inventory.v1.Reservation.State). */
export const ReservationState = { RESERVED: 1, RELEASED: 2 } as const;

/** A reservation the expiry looks at: its order, and when it was made. */
export interface UnconfirmedReservation {
  orderId: string;
  createTime: number;
}

/** A reservation as stored. */
export interface ReservationRecord {
  orderId: string;
  state: (typeof ReservationState)[keyof typeof ReservationState];
  lines: ReservedLine[];
  totalMinor: number;
  currencyCode: string;
}

/** A restock: quantity to add, and optionally new attributes. */
export interface RestockInput {
  sku: string;
  quantity: number;
  name?: string;
  unitPriceMinor?: number;
  currencyCode?: string;
  requestId?: string;
}

interface ItemRow {
  sku: string;
  name: string;
  unit_price_minor: number;
  currency_code: string;
  available: number;
  reserved: number;
  create_time: number;
  update_time: number;
  version: number;
}

interface ReservationRow {
  order_id: string;
  state: number;
  lines: string;
  total_minor: number;
  currency_code: string;
}

const MAX_STOCK = 2 ** 31 - 1;

function toItem(row: ItemRow): ItemRecord {
  return {
    sku: row.sku,
    name: row.name,
    unitPriceMinor: row.unit_price_minor,
    currencyCode: row.currency_code,
    available: row.available,
    reserved: row.reserved,
    createTime: row.create_time,
    updateTime: row.update_time,
    version: row.version,
  };
}

function toReservation(row: ReservationRow): ReservationRecord {
  return {
    orderId: row.order_id,
    state: row.state as ReservationRecord["state"],
    lines: JSON.parse(row.lines) as ReservedLine[],
    totalMinor: row.total_minor,
    currencyCode: row.currency_code,
  };
}

function sameLines(a: readonly { sku: string; quantity: number }[], b: readonly { sku: string; quantity: number }[]): boolean {
  return a.length === b.length && a.every((line, i) => line.sku === b[i]!.sku && line.quantity === b[i]!.quantity);
}

/**
 * The inventory's data: items and reservations in SQLite. Every change is
 * one IMMEDIATE transaction, so check-and-reserve cannot oversell, whatever
 * the concurrency (and whatever the number of processes sharing the file);
 * the same transaction appends the change's events (one per SKU touched,
 * versioned by the item's version) to the outbox.
 */
export class InventoryStore {
  private readonly statements;
  private readonly reserveTx;
  private readonly releaseTx;
  private readonly restockTx;

  constructor(
    db: Db,
    private readonly outbox: Outbox,
    private readonly clock: () => number = Date.now,
    private readonly transactions: TransactionTimer = untimed,
  ) {
    this.statements = {
      getItem: db.prepare<[string], ItemRow>("SELECT * FROM items WHERE sku = ?"),
      listItems: db.prepare<[string, number], ItemRow>(`SELECT * FROM items WHERE sku > ? ORDER BY sku LIMIT ${boundLimit()}`),
      insertItem: db.prepare(
        `INSERT INTO items (sku, name, unit_price_minor, currency_code, available, reserved, create_time, update_time, version)
         VALUES (@sku, @name, @unitPriceMinor, @currencyCode, @quantity, 0, @now, @now, 1)`,
      ),
      restockItem: db.prepare(
        `UPDATE items SET available = available + @quantity, name = @name, unit_price_minor = @unitPriceMinor,
           currency_code = @currencyCode, update_time = MAX(update_time, @now), version = version + 1 WHERE sku = @sku`,
      ),
      // An item's update_time never goes back (a host clock stepped back keeps the last one), so its versions' times are in
      // order: the read models tell a second history by them (Projector). A clock stepped forward and back leaves the items
      // it changed meanwhile at that later time until the clock passes it (their events' occur_time is the clock's own).
      // The item as changed comes back from the write itself (RETURNING), not from a SELECT after it.
      reserveItem: db.prepare<[number, number, number, string], ItemRow>(
        "UPDATE items SET available = available - ?, reserved = reserved + ?, update_time = MAX(update_time, ?), version = version + 1 WHERE sku = ? RETURNING *",
      ),
      releaseItem: db.prepare<[number, number, number, string], ItemRow>(
        "UPDATE items SET available = available + ?, reserved = reserved - ?, update_time = MAX(update_time, ?), version = version + 1 WHERE sku = ? RETURNING *",
      ),
      getReservation: db.prepare<[string], ReservationRow>("SELECT * FROM reservations WHERE order_id = ?"),
      insertReservation: db.prepare(
        `INSERT INTO reservations (order_id, state, lines, total_minor, currency_code, create_time, update_time)
         VALUES (@orderId, @state, @lines, @totalMinor, @currencyCode, @now, @now)`,
      ),
      markReleased: db.prepare<[number, string, number, string]>("UPDATE reservations SET state = ?, lines = ?, update_time = ? WHERE order_id = ?"),
      markConfirmed: db.prepare<[string]>("UPDATE reservations SET order_confirmed = 1 WHERE order_id = ?"),
      unconfirmedBefore: db.prepare<[number, number, string, number], { order_id: string; create_time: number }>(
        `SELECT order_id, create_time FROM reservations WHERE state = ${ReservationState.RESERVED} AND order_confirmed = 0 AND create_time < ?
           AND (create_time, order_id) > (?, ?) ORDER BY create_time, order_id LIMIT ${boundLimit()}`,
      ),
      getRestock: db.prepare<[string], { sku: string; quantity: number; request: string | null }>("SELECT sku, quantity, request FROM restocks WHERE request_id = ?"),
      insertRestock: db.prepare<[string, string, number, string, number]>(
        "INSERT INTO restocks (request_id, sku, quantity, request, create_time) VALUES (?, ?, ?, ?, ?)",
      ),
    };
    this.reserveTx = db.transaction((orderId: string, lines: readonly { sku: string; quantity: number }[], meta: EventMeta) =>
      this.reserveInTx(orderId, lines, meta),
    );
    this.releaseTx = db.transaction((orderId: string, meta: EventMeta) => this.releaseInTx(orderId, meta));
    this.restockTx = db.transaction((input: RestockInput, meta: EventMeta) => this.restockInTx(input, meta));
  }

  /** Returns an item, or undefined when the SKU is unknown. */
  getItem(sku: string): ItemRecord | undefined {
    const row = this.statements.getItem.get(sku);
    return row && toItem(row);
  }

  /** Returns up to `limit` items with a SKU after `afterSku`, ordered by SKU. */
  listItems(afterSku: string, limit: number): ItemRecord[] {
    return this.statements.listItems.all(afterSku, limit).map(toItem);
  }

  /** Returns a reservation, or undefined. */
  getReservation(orderId: string): ReservationRecord | undefined {
    const row = this.statements.getReservation.get(orderId);
    return row && toReservation(row);
  }

  /** Records that the order holding a reservation was confirmed, so the reservation never expires. */
  markOrderConfirmed(orderId: string): void {
    this.statements.markConfirmed.run(orderId);
  }

  /**
   * Reservations still held for orders not known to be confirmed, made before `before` (epoch ms),
   * oldest first; `after` pages on from the last one of the previous page.
   */
  unconfirmedSince(before: number, limit: number, after: UnconfirmedReservation = { orderId: "", createTime: -1 }): UnconfirmedReservation[] {
    return this.statements.unconfirmedBefore
      .all(before, after.createTime, after.orderId, limit)
      .map((row) => ({ orderId: row.order_id, createTime: row.create_time }));
  }

  /** Adds stock (creating the SKU when new); with a request id, applies it once. */
  restock(input: RestockInput, meta: EventMeta = {}): ItemRecord {
    return this.transactions.run("restock", () => this.restockTx.immediate(input, meta), meta.traceContext);
  }

  /** Reserves every line for an order or none; idempotent per order id. */
  reserve(orderId: string, lines: readonly { sku: string; quantity: number }[], meta: EventMeta = {}): ReservationRecord {
    return this.transactions.run("reserve", () => this.reserveTx.immediate(orderId, lines, meta), meta.traceContext);
  }

  /** Releases an order's reservation; idempotent, and leaves a tombstone for an unknown order. */
  release(orderId: string, meta: EventMeta = {}): ReservationRecord {
    return this.transactions.run("release", () => this.releaseTx.immediate(orderId, meta), meta.traceContext);
  }

  private restockInTx(input: RestockInput, meta: EventMeta): ItemRecord {
    const now = this.clock();
    if (input.requestId) {
      const previous = this.statements.getRestock.get(input.requestId);
      const request = JSON.stringify([input.sku, input.quantity, input.name ?? null, input.unitPriceMinor ?? null, input.currencyCode ?? null]);
      if (previous) {
        const same = previous.request === null ? previous.sku === input.sku && previous.quantity === input.quantity : previous.request === request;
        if (!same) throw new OrderlyError("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different restock", { metadata: { sku: previous.sku } });
        return this.getItem(input.sku)!;
      }
      this.statements.insertRestock.run(input.requestId, input.sku, input.quantity, request, now);
    }
    const current = this.getItem(input.sku);
    if (current === undefined) {
      this.statements.insertItem.run({
        sku: input.sku,
        name: input.name ?? input.sku,
        unitPriceMinor: input.unitPriceMinor ?? 0,
        currencyCode: input.currencyCode ?? "USD",
        quantity: input.quantity,
        now,
      });
    } else {
      // A price means an amount in its currency: a new currency without a new price would reprice the item (1250 USD as 1250 EUR).
      // (No price yet, 0, is the same in any currency.)
      if (input.currencyCode !== undefined && input.currencyCode !== current.currencyCode && input.unitPriceMinor === undefined && current.unitPriceMinor !== 0) {
        throw validationError([{ field: "unit_price_minor", description: `must be given with a currency_code that changes the item's (${current.currencyCode} to ${input.currencyCode})` }]);
      }
      if (current.available + current.reserved + input.quantity > MAX_STOCK) {
        throw new OrderlyError("STOCK_LIMIT_EXCEEDED", `stock of ${input.sku} would exceed ${MAX_STOCK}`, {
          metadata: { sku: input.sku },
        });
      }
      this.statements.restockItem.run({
        sku: input.sku,
        quantity: input.quantity,
        name: input.name ?? current.name,
        unitPriceMinor: input.unitPriceMinor ?? current.unitPriceMinor,
        currencyCode: input.currencyCode ?? current.currencyCode,
        now,
      });
    }
    const item = this.getItem(input.sku)!;
    this.outbox.append(
      newEvent(item.sku, item.version, now, { case: "stockRestocked", value: { item: itemMessage(item), quantity: input.quantity } }, meta),
    );
    return item;
  }

  private reserveInTx(orderId: string, lines: readonly { sku: string; quantity: number }[], meta: EventMeta): ReservationRecord {
    const existing = this.getReservation(orderId);
    if (existing) {
      if (existing.state === ReservationState.RELEASED) {
        throw new OrderlyError("RESERVATION_RELEASED", `the reservation of order ${orderId} was released`, {
          metadata: { orderId },
        });
      }
      if (!sameLines(existing.lines, lines)) {
        throw new OrderlyError("RESERVATION_MISMATCH", `order ${orderId} is reserved with other lines`, {
          metadata: { orderId },
        });
      }
      return existing;
    }
    const skus = new Set(lines.map((line) => line.sku));
    if (lines.length === 0 || skus.size !== lines.length || lines.some((line) => !Number.isInteger(line.quantity) || line.quantity < 1)) {
      throw new OrderlyError("VALIDATION_FAILED", "a reservation needs lines of distinct SKUs with quantities of 1 or more", { metadata: { orderId } });
    }
    // Checks that do not depend on stock come first, so the outcome does not depend on the order of the lines.
    const items = lines.map((line) => {
      const item = this.getItem(line.sku);
      if (item === undefined) throw new OrderlyError("UNKNOWN_SKU", `unknown SKU ${line.sku}`, { metadata: { sku: line.sku } });
      return item;
    });
    const currencyCode = items[0]!.currencyCode;
    const otherCurrency = items.find((item) => item.currencyCode !== currencyCode);
    if (otherCurrency !== undefined) {
      throw new OrderlyError("MIXED_CURRENCIES", "the order's items are priced in different currencies", { metadata: { sku: otherCurrency.sku } });
    }
    const reserved: ReservedLine[] = lines.map((line, i) => {
      const item = items[i]!;
      if (item.available < line.quantity) {
        throw new OrderlyError("INSUFFICIENT_STOCK", `not enough stock of ${line.sku}`, {
          metadata: { sku: line.sku, requested: String(line.quantity), available: String(item.available) },
        });
      }
      return { sku: line.sku, quantity: line.quantity, unitPriceMinor: item.unitPriceMinor };
    });
    const now = this.clock();
    const changed = this.moveStock("stockReserved", orderId, reserved, now, meta);
    const record: ReservationRecord = {
      orderId,
      state: ReservationState.RESERVED,
      lines: changed,
      totalMinor: reserved.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0),
      currencyCode,
    };
    this.statements.insertReservation.run({ ...record, lines: JSON.stringify(changed), now });
    return record;
  }

  private releaseInTx(orderId: string, meta: EventMeta): ReservationRecord {
    const now = this.clock();
    const existing = this.getReservation(orderId);
    if (existing === undefined) {
      const tombstone: ReservationRecord = { orderId, state: ReservationState.RELEASED, lines: [], totalMinor: 0, currencyCode: "" };
      this.statements.insertReservation.run({ ...tombstone, lines: "[]", now });
      return tombstone;
    }
    if (existing.state === ReservationState.RELEASED) return existing;
    const changed = this.moveStock("stockReleased", orderId, existing.lines, now, meta);
    this.statements.markReleased.run(ReservationState.RELEASED, JSON.stringify(changed), now, orderId);
    return { ...existing, state: ReservationState.RELEASED, lines: changed };
  }

  /**
   * Takes each line's quantity from its item's available stock into its reserved (or, released, back), with an event per
   * line: the lines, each with the version its item was left at.
   */
  private moveStock(move: "stockReserved" | "stockReleased", orderId: string, lines: readonly ReservedLine[], now: number, meta: EventMeta): ReservedLine[] {
    const statement = move === "stockReserved" ? this.statements.reserveItem : this.statements.releaseItem;
    return lines.map((line) => {
      const item = toItem(statement.get(line.quantity, line.quantity, now, line.sku)!);
      const value = { item: itemMessage(item), orderId, quantity: line.quantity };
      this.outbox.append(newEvent(item.sku, item.version, now, { case: move, value }, meta));
      return { ...line, itemVersion: item.version };
    });
  }
}
