import type { Context } from "@opentelemetry/api";
import type { Reservation } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderlyError, isTransient, underlyingCause, type Reason } from "../../shared/errors/index.js";
import type { EventMeta } from "../../shared/events/index.js";
import type { Client } from "../../shared/grpc/index.js";
import type { Logger } from "../../shared/logging/index.js";
import { Status, type OrderLine, type OrderRecord, type OrderStore } from "./store.js";

/** What settling an order needs. */
export interface SettleDeps {
  store: OrderStore;
  inventory: Client<typeof InventoryService>;
  /** When the inventory cannot be reached: accept the order to be reserved through events (true), or fail (false). */
  degrade: boolean;
}

/** The prices a reservation captured, as the order records them. */
export function pricingOf(reservation: Reservation): { items: OrderLine[]; totalMinor: number; currencyCode: string } {
  return {
    items: reservation.lines.map((line) => ({ sku: line.sku, quantity: line.quantity, unitPriceMinor: Number(line.unitPriceMinor), itemVersion: Number(line.itemVersion) })),
    totalMinor: Number(reservation.totalMinor),
    currencyCode: reservation.currencyCode,
  };
}

/**
 * The reasons a ReserveStock answer is recorded for: the business refusals.
 * Any other failure leaves the order PENDING for a retry or the recovery
 * sweep (which passes over an order that fails for a reason of its own, such
 * as RESERVATION_MISMATCH). The event path records every reason the
 * inventory itself reports as final (reservation-outcomes.ts).
 */
const businessRefusals: ReadonlySet<Reason> = new Set<Reason>(["INSUFFICIENT_STOCK", "MIXED_CURRENCIES", "UNKNOWN_SKU", "RESERVATION_RELEASED"]);

/** How long releasing a discarded order's stock may take (ms): it runs after the answer, on a budget of its own. */
const RELEASE_BUDGET_MS = 2000;

/**
 * Records a refused reservation: REJECTED with its reason; an order never
 * announced that names an unknown SKU is discarded (it was invalid:
 * UNKNOWN_SKU is thrown, as it is when a request with its key discarded it
 * already), one announced meanwhile rejected; RESERVATION_RELEASED means a
 * cancel won. Returns the order as it now is, undefined when it is gone (a
 * request with its key discarded it).
 */
export function recordRefusal(store: OrderStore, order: OrderRecord, reason: Reason, metadata: Record<string, string>, meta: EventMeta): OrderRecord | undefined {
  switch (reason) {
    case "UNKNOWN_SKU": {
      const unknown = () => new OrderlyError("UNKNOWN_SKU", `unknown SKU ${metadata.sku ?? ""}`.trim(), { metadata });
      if (!order.announced && store.discard(order.id, meta)) throw unknown();
      // Gone: a request with its key found the SKU unknown too, and discarded it.
      const rejected = store.reject(order.id, reason, metadata, meta);
      if (rejected === undefined) throw unknown();
      return rejected;
    }
    case "RESERVATION_RELEASED": {
      const current = store.get(order.id);
      return current?.status === Status.PENDING ? store.reject(order.id, reason, metadata, meta) : current;
    }
    default:
      return store.reject(order.id, reason, metadata, meta);
  }
}

/**
 * Reserves a PENDING order's stock and records the outcome, returning the
 * order as it now is. When the inventory cannot answer in time, the order is
 * accepted to be reserved through events (degrade), or the error is thrown
 * and the order stays PENDING for a retry or the recovery loop (fail fast).
 *
 * Undefined when the order is gone: a concurrent request with its
 * idempotency key found one of its SKUs unknown and discarded it (its
 * answer, UNKNOWN_SKU, recorded nothing). When the order is gone at the
 * end, its stock is released in the background: what this call, or an
 * earlier attempt still on its way, may reserve for it (a SKU restocked in
 * between) would otherwise be held until the inventory's expiry sweep, as no
 * event names an order never announced. The release leaves a tombstone, so a
 * reservation arriving after it is refused. Should it fail, the expiry sweep
 * frees the stock. Not for an order `begunHere` (by the request making this
 * call) that this call found invalid and discarded: no earlier call reserved
 * for it, so a request naming an unknown SKU changes nothing at the
 * inventory (only an attempt of this call's own reservation, retried after a
 * timeout, could still arrive: rare, and the expiry sweep frees it).
 */
export async function settleOrder(
  deps: SettleDeps,
  order: OrderRecord,
  options: { deadline: number; signal?: AbortSignal; requestId: string; traceContext: Context },
  logger: Logger,
  begunHere = false,
): Promise<OrderRecord | undefined> {
  const meta = { requestId: options.requestId, traceContext: options.traceContext };
  let settled: OrderRecord | undefined;
  try {
    settled = await reserveAndRecord(deps, order, options, meta, logger);
  } catch (error) {
    if (!begunHere && isGone(deps.store, order.id)) void releaseDiscarded(deps, order.id, meta, logger);
    throw error;
  }
  if (settled === undefined) void releaseDiscarded(deps, order.id, meta, logger);
  return settled;
}

/** Whether an order is no longer recorded; false when the database cannot tell (the expiry sweep frees what it holds). */
function isGone(store: OrderStore, orderId: string): boolean {
  try {
    return store.get(orderId) === undefined;
  } catch {
    return false;
  }
}

/** settleOrder's reservation and its record, the order gone or not. */
async function reserveAndRecord(
  deps: SettleDeps,
  order: OrderRecord,
  options: { deadline: number; signal?: AbortSignal; requestId: string; traceContext: Context },
  meta: EventMeta,
  logger: Logger,
): Promise<OrderRecord | undefined> {
  try {
    const { reservation } = await deps.inventory.reserveStock(
      { orderId: order.id, lines: order.items.map((item) => ({ sku: item.sku, quantity: item.quantity })) },
      options,
    );
    return deps.store.confirm(order.id, pricingOf(reservation!), meta);
  } catch (error) {
    const err = OrderlyError.from(error);
    if (businessRefusals.has(err.reason)) return recordRefusal(deps.store, order, err.reason, { ...err.metadata }, meta);
    if (!deps.degrade || !isTransient(err) || options.signal?.aborted) throw err;
    // Transient: the reservation may have been made all the same.
    const { order: accepted, acceptedNow } = deps.store.acceptAwaitingReservation(order.id, meta);
    // Said by the call that accepts it so, not again each time the recovery loop (or a retry of its key) tries it.
    if (acceptedNow) logger.info({ orderId: order.id, reason: err.reason, dependency: err.metadata.dependency, cause: underlyingCause(err) }, "inventory could not reserve the order now (see reason): accepted as PENDING, to be reserved through events");
    // The order as it is now, accepted by this call or before, or decided meanwhile; undefined when it is gone.
    return accepted;
  }
}

/** Releases what a discarded order's reservation holds, on a budget of its own; a failure is logged (the expiry sweep frees it). */
async function releaseDiscarded(deps: SettleDeps, orderId: string, meta: { requestId: string; traceContext: Context }, logger: Logger): Promise<void> {
  try {
    await deps.inventory.releaseStock({ orderId }, { ...meta, deadline: Date.now() + RELEASE_BUDGET_MS });
  } catch (error) {
    logger.warn({ err: error, orderId }, "could not release the stock of an order discarded meanwhile; the inventory's expiry sweep will");
  }
}
