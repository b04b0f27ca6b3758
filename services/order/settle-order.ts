import type { Context } from "@opentelemetry/api";
import type { Reservation } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderlyError, isTransient, type Reason } from "../../shared/errors/index.js";
import type { EventMeta } from "../../shared/events/index.js";
import type { Client } from "../../shared/grpc/index.js";
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
    items: reservation.lines.map((line) => ({ sku: line.sku, quantity: line.quantity, unitPriceMinor: Number(line.unitPriceMinor) })),
    totalMinor: Number(reservation.totalMinor),
    currencyCode: reservation.currencyCode,
  };
}

/**
 * Records a refused reservation: REJECTED for a business reason; an order
 * never announced that names an unknown SKU is discarded (it was invalid);
 * RESERVATION_RELEASED means a cancel won. Undefined for any other reason
 * (the outcome is still unknown).
 */
export function recordRefusal(store: OrderStore, order: OrderRecord, reason: Reason, metadata: Record<string, string>, meta: EventMeta): OrderRecord | undefined {
  switch (reason) {
    case "INSUFFICIENT_STOCK":
    case "MIXED_CURRENCIES":
      return store.reject(order.id, reason, metadata, meta);
    case "UNKNOWN_SKU":
      if (!order.announced) {
        store.discard(order.id, meta);
        throw new OrderlyError("UNKNOWN_SKU", `unknown SKU ${metadata.sku ?? ""}`.trim(), { metadata });
      }
      return store.reject(order.id, reason, metadata, meta);
    case "RESERVATION_RELEASED": {
      const current = store.get(order.id);
      return current?.status === Status.PENDING ? store.reject(order.id, reason, metadata, meta) : current;
    }
    default:
      return undefined;
  }
}


/**
 * Reserves a PENDING order's stock and records the outcome, returning the
 * order as it now is. When the inventory cannot answer in time, the order is
 * accepted to be reserved through events (degrade), or the error is thrown
 * and the order stays PENDING for a retry or the recovery loop (fail fast).
 */
export async function settleOrder(
  deps: SettleDeps,
  order: OrderRecord,
  options: { deadline: number; signal?: AbortSignal; requestId: string; traceContext: Context },
): Promise<OrderRecord> {
  const meta = { requestId: options.requestId, traceContext: options.traceContext };
  try {
    const { reservation } = await deps.inventory.reserveStock(
      { orderId: order.id, lines: order.items.map((item) => ({ sku: item.sku, quantity: item.quantity })) },
      options,
    );
    return deps.store.confirm(order.id, pricingOf(reservation!), meta);
  } catch (error) {
    const err = OrderlyError.from(error);
    const refused = recordRefusal(deps.store, order, err.reason, { ...err.metadata }, meta);
    if (refused) return refused;
    if (deps.degrade && isTransient(err) && !options.signal?.aborted) {
      return deps.store.acceptAwaitingReservation(order.id, meta) ?? deps.store.get(order.id)!;
    }
    throw err;
  }
}
