import { OrderlyError, type Reason } from "../../shared/errors/index.js";
import { newEvent, type EventMeta, type EventPayload, type Outbox } from "../../shared/events/index.js";
import { boundLimit, untimed, type Db, type TransactionTimer } from "../../shared/sqlite/index.js";
import { orderMessage } from "./messages.js";

/** Order statuses, as stored (the values of orderly.order.v1.OrderStatus). */
export const Status = { PENDING: 1, CONFIRMED: 2, REJECTED: 3, CANCELLED: 4 } as const;
export type Status = (typeof Status)[keyof typeof Status];

/** One line of an order; the price is 0 until the stock is reserved. */
export interface OrderLine {
  sku: string;
  quantity: number;
  unitPriceMinor: number;
  /** The version the order's reservation left the item's stock at, for the gateway's cache (absent before it was reserved, and in orders confirmed before it was kept). */
  itemVersion?: number;
}

/** An order as stored. */
export interface OrderRecord {
  id: string;
  customerId: string;
  status: Status;
  items: OrderLine[];
  totalMinor: number;
  currencyCode: string;
  rejectReason: string;
  rejectMetadata: Record<string, string>;
  createTime: number;
  updateTime: number;
  version: number;
  /** Whether the order's events were published (it was decided, or accepted awaiting an async reservation). */
  announced: boolean;
}

/** What CreateOrder asks the store to record. */
export interface NewOrder {
  id: string;
  customerId: string;
  items: { sku: string; quantity: number }[];
  requestId: string;
  requestHash: string;
}

/** The result of `begin`: the order, and the response first returned for its idempotency key, if any. */
export interface BegunOrder {
  order: OrderRecord;
  replay: OrderRecord | undefined;
}

interface OrderRow {
  id: string;
  customer_id: string;
  status: number;
  items: string;
  total_minor: number;
  currency_code: string;
  reject_reason: string;
  reject_metadata: string;
  create_time: number;
  update_time: number;
  version: number;
  announced: number;
}

function toOrder(row: OrderRow): OrderRecord {
  return {
    id: row.id,
    customerId: row.customer_id,
    status: row.status as Status,
    items: JSON.parse(row.items) as OrderLine[],
    totalMinor: row.total_minor,
    currencyCode: row.currency_code,
    rejectReason: row.reject_reason,
    rejectMetadata: JSON.parse(row.reject_metadata) as Record<string, string>,
    createTime: row.create_time,
    updateTime: row.update_time,
    version: row.version,
    announced: row.announced === 1,
  };
}

/**
 * The order service's data: orders and idempotency keys in SQLite. Status
 * changes are conditional on the current status, so concurrent creates,
 * retries and cancels of one order settle on one outcome. Each change
 * appends its event to the outbox in the same transaction. An order is
 * announced (OrderCreated) together with its first decision, so an order
 * that turns out invalid (unknown SKU) and is discarded never reaches the
 * event streams.
 */
export class OrderStore {
  private readonly statements;
  private readonly beginTx;
  private readonly decideTx;
  private readonly discardTx;
  private readonly cancelTx;
  private readonly acceptTx;

  constructor(
    db: Db,
    private readonly outbox: Outbox,
    private readonly clock: () => number = Date.now,
    private readonly transactions: TransactionTimer = untimed,
  ) {
    this.statements = {
      get: db.prepare<[string], OrderRow>("SELECT * FROM orders WHERE id = ?"),
      // The cursor as a row value, which SQLite bounds the index with: spelled out as an OR, it walked the index from the
      // customer's newest order to the cursor, so page n cost n pages of rows.
      listByCustomer: db.prepare<[string, number, string, number], OrderRow>(
        `SELECT * FROM orders WHERE customer_id = ? AND (create_time, id) < (?, ?)
         ORDER BY create_time DESC, id DESC LIMIT ${boundLimit()}`,
      ),
      // The changed row comes back from the write itself (RETURNING), not from a second statement.
      insert: db.prepare<[{ id: string; customerId: string; items: string; now: number }], OrderRow>(
        `INSERT INTO orders (id, customer_id, status, items, create_time, update_time, version)
         VALUES (@id, @customerId, ${Status.PENDING}, @items, @now, @now, 1) RETURNING *`,
      ),
      decide: db.prepare<[DecideParams], OrderRow>(
        `UPDATE orders SET status = @status, items = @items, total_minor = @totalMinor, currency_code = @currencyCode,
           reject_reason = @rejectReason, reject_metadata = @rejectMetadata, update_time = @now, version = version + 1, announced = 1
         WHERE id = @id AND status = ${Status.PENDING} RETURNING *`,
      ),
      cancel: db.prepare<[number, string]>(
        `UPDATE orders SET status = ${Status.CANCELLED}, update_time = ?, version = version + 1, announced = 1
         WHERE id = ? AND status IN (${Status.PENDING}, ${Status.CONFIRMED})`,
      ),
      markAnnounced: db.prepare<[string]>(`UPDATE orders SET announced = 1 WHERE id = ? AND status = ${Status.PENDING} AND announced = 0`),
      // Only an order never announced: one accepted meanwhile (202) by a request with its key is the client's.
      deletePending: db.prepare<[string]>(`DELETE FROM orders WHERE id = ? AND status = ${Status.PENDING} AND announced = 0`),
      getKey: db.prepare<[string, string], { request_hash: string; order_id: string; response: string | null }>(
        "SELECT request_hash, order_id, response FROM idempotency_keys WHERE customer_id = ? AND request_id = ?",
      ),
      insertKey: db.prepare<[string, string, string, string, number]>(
        "INSERT INTO idempotency_keys (customer_id, request_id, request_hash, order_id, create_time) VALUES (?, ?, ?, ?, ?)",
      ),
      saveResponse: db.prepare<[string, string]>("UPDATE idempotency_keys SET response = ? WHERE order_id = ? AND response IS NULL"),
      deleteKeysOf: db.prepare<[string]>("DELETE FROM idempotency_keys WHERE order_id = ?"),
      // At most a chunk of the oldest keys at a time (see pruneIdempotencyKeys).
      pruneKeys: db.prepare<[number, number]>(
        `DELETE FROM idempotency_keys WHERE (customer_id, request_id) IN
           (SELECT customer_id, request_id FROM idempotency_keys WHERE create_time < ? ORDER BY create_time LIMIT ${boundLimit()})`,
      ),
      pendingBefore: db.prepare<[number, number, number, string, number], OrderRow>(
        `SELECT * FROM orders WHERE status = ${Status.PENDING} AND announced = ? AND update_time < ?
           AND (update_time, id) > (?, ?) ORDER BY update_time, id LIMIT ${boundLimit()}`,
      ),
    };
    this.beginTx = db.transaction((order: NewOrder) => this.beginInTx(order));
    this.decideTx = db.transaction((id: string, decision: Decision, meta: EventMeta) => this.decideInTx(id, decision, meta));
    this.acceptTx = db.transaction((id: string, meta: EventMeta) => {
      const before = this.get(id);
      if (before === undefined || this.statements.markAnnounced.run(id).changes === 0) return { order: before, acceptedNow: false };
      // No response is saved for the key: a 202 is not the outcome, so a retry is answered with the order as it
      // is then, until the decision saves the response every later retry replays.
      this.announce(before, meta, true);
      return { order: this.get(id), acceptedNow: true };
    });
    this.cancelTx = db.transaction((id: string, meta: EventMeta) => {
      const before = this.get(id);
      if (before === undefined) return undefined;
      if (this.statements.cancel.run(this.clock(), id).changes === 0) return before;
      const after = this.get(id)!;
      if (!before.announced) this.announce(before, meta);
      this.emit(after, { case: "orderCancelled", value: { order: orderMessage(after) } }, meta);
      return after;
    });
    this.discardTx = db.transaction((id: string) => {
      if (this.statements.deletePending.run(id).changes === 0) return false;
      this.statements.deleteKeysOf.run(id);
      return true;
    });
  }

  /** Returns an order, or undefined. */
  get(id: string): OrderRecord | undefined {
    const row = this.statements.get.get(id);
    return row && toOrder(row);
  }

  /** A customer's orders older than the cursor (create time, id), newest first. */
  listByCustomer(customerId: string, before: { createTime: number; id: string } | undefined, limit: number): OrderRecord[] {
    const time = before?.createTime ?? Number.MAX_SAFE_INTEGER;
    const id = before?.id ?? "";
    return this.statements.listByCustomer.all(customerId, time, id, limit).map(toOrder);
  }

  /**
   * Records a new PENDING order, or — when its idempotency key was seen —
   * returns the order that key created (IDEMPOTENCY_KEY_REUSED when the
   * request differs).
   */
  begin(order: NewOrder, meta: EventMeta = {}): BegunOrder {
    return this.transactions.run("begin", () => this.beginTx.immediate(order), meta.traceContext);
  }

  /**
   * Confirms a PENDING order with the prices its reservation captured; returns the order as it now is
   * (decided before: unchanged), undefined when it is gone (discarded by a request with its key).
   */
  confirm(id: string, pricing: { items: OrderLine[]; totalMinor: number; currencyCode: string }, meta: EventMeta = {}): OrderRecord | undefined {
    return this.transactions.run("decide", () => this.decideTx.immediate(id, { status: Status.CONFIRMED, ...pricing, rejectReason: "", rejectMetadata: {} }, meta), meta.traceContext);
  }

  /** Rejects a PENDING order for a reason; returns what confirm does. */
  reject(id: string, reason: Reason, metadata: Record<string, string>, meta: EventMeta = {}): OrderRecord | undefined {
    const current = this.get(id);
    const decision = { status: Status.REJECTED, items: current?.items ?? [], totalMinor: 0, currencyCode: "", rejectReason: reason, rejectMetadata: metadata };
    return this.transactions.run("decide", () => this.decideTx.immediate(id, decision, meta), meta.traceContext);
  }

  /**
   * Announces a PENDING order as accepted without a reservation (the async
   * path: the inventory service reserves from the OrderCreated event). Its
   * idempotency key gets its response when the order is decided. Returns
   * the order as it now is, and whether this call announced it (not an
   * earlier one, nor a decision).
   */
  acceptAwaitingReservation(id: string, meta: EventMeta = {}): { order: OrderRecord | undefined; acceptedNow: boolean } {
    return this.transactions.run("accept", () => this.acceptTx.immediate(id, meta), meta.traceContext);
  }

  /**
   * Forgets a PENDING order never announced, and its idempotency key (for requests that turned out to be
   * invalid); false when there is no such order (announced or decided meanwhile, or gone already).
   */
  discard(id: string, meta: EventMeta = {}): boolean {
    return this.transactions.run("discard", () => this.discardTx.immediate(id), meta.traceContext);
  }

  /** Cancels a PENDING or CONFIRMED order; returns the order as it now is. */
  cancel(id: string, meta: EventMeta = {}): OrderRecord | undefined {
    return this.transactions.run("cancel", () => this.cancelTx.immediate(id, meta), meta.traceContext);
  }

  /**
   * PENDING orders not changed since `before` (epoch ms), oldest first: those not announced, or with `announced` those
   * accepted awaiting an async reservation; `after` pages on from the last order of the previous page.
   */
  pendingSince(before: number, limit: number, after?: OrderRecord, announced = false): OrderRecord[] {
    const time = after?.updateTime ?? -1;
    return this.statements.pendingBefore.all(announced ? 1 : 0, before, time, after?.id ?? "", limit).map(toOrder);
  }

  /**
   * Deletes idempotency keys created before `before` (epoch ms), the oldest first and at most `limit` of them; returns
   * how many. The service prunes in chunks: one statement over an hour's expired keys held its only thread (and the
   * database) for seconds (100,000 keys with 2 KB answers: 2.6 s with checkpoints off the thread, as the service runs them; a chunk of 1,000 takes ~50 ms), and every call with it.
   */
  pruneIdempotencyKeys(before: number, limit = Number.MAX_SAFE_INTEGER): number {
    return this.statements.pruneKeys.run(before, limit).changes;
  }

  private beginInTx(order: NewOrder): BegunOrder {
    if (order.requestId !== "") {
      const key = this.statements.getKey.get(order.customerId, order.requestId);
      if (key) {
        if (key.request_hash !== order.requestHash) {
          throw new OrderlyError("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request", {
            metadata: { orderId: key.order_id },
          });
        }
        const existing = this.get(key.order_id);
        if (existing) return { order: existing, replay: key.response === null ? undefined : (JSON.parse(key.response) as OrderRecord) };
      }
    }
    const now = this.clock();
    const items: OrderLine[] = order.items.map((item) => ({ ...item, unitPriceMinor: 0 }));
    const inserted = this.statements.insert.get({ id: order.id, customerId: order.customerId, items: JSON.stringify(items), now })!;
    if (order.requestId !== "") {
      this.statements.insertKey.run(order.customerId, order.requestId, order.requestHash, order.id, now);
    }
    return { order: toOrder(inserted), replay: undefined };
  }

  private decideInTx(id: string, decision: Decision, meta: EventMeta): OrderRecord | undefined {
    const before = this.get(id);
    if (before === undefined) return undefined;
    const decided = this.statements.decide.get({
      id,
      status: decision.status,
      items: JSON.stringify(decision.items),
      totalMinor: decision.totalMinor,
      currencyCode: decision.currencyCode,
      rejectReason: decision.rejectReason,
      rejectMetadata: JSON.stringify(decision.rejectMetadata),
      now: this.clock(),
    });
    const order = decided ? toOrder(decided) : before;
    if (decided) {
      this.statements.saveResponse.run(JSON.stringify(order), id);
      if (!before.announced) this.announce(before, meta);
      const value = { order: orderMessage(order) };
      this.emit(order, order.status === Status.CONFIRMED ? { case: "orderConfirmed", value } : { case: "orderRejected", value }, meta);
    }
    return order;
  }

  /** Appends OrderCreated for the order as it was recorded (PENDING, version 1). */
  private announce(pending: OrderRecord, meta: EventMeta, awaitingReservation = false): void {
    const created = { ...pending, status: Status.PENDING, version: 1, updateTime: pending.createTime };
    this.emit(created, { case: "orderCreated", value: { order: orderMessage(created), awaitingReservation } }, meta);
  }

  private emit(order: OrderRecord, payload: EventPayload, meta: EventMeta): void {
    this.outbox.append(newEvent(order.id, order.version, order.updateTime, payload, meta));
  }
}

/** The named parameters of the decide statement: a decision with its lists as JSON. */
type DecideParams = Omit<Decision, "items" | "rejectMetadata"> & { id: string; items: string; rejectMetadata: string; now: number };

interface Decision {
  status: Status;
  items: OrderLine[];
  totalMinor: number;
  currencyCode: string;
  rejectReason: string;
  rejectMetadata: Record<string, string>;
}
