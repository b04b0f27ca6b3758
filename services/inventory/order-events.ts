import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { newEvent, type EventHandler, type Outbox } from "../../shared/events/index.js";
import { reservationMessage } from "./messages.js";
import type { InventoryStore } from "./store.js";

/** Reasons a reservation is refused for good (any other error is retried by the consumer). */
const refusals = new Set(["INSUFFICIENT_STOCK", "UNKNOWN_SKU", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "RESERVATION_MISMATCH", "VALIDATION_FAILED"]);

/**
 * The order events the inventory has nothing to do with: an OrderCreated
 * whose order was reserved while its client waited (it awaits no
 * reservation), and any event not listed in handleOrderEvents.
 */
export function ignoresOrderEvent({ payload }: Event): boolean {
  switch (payload.case) {
    case "orderCreated":
      return !payload.value.awaitingReservation || payload.value.order === undefined;
    case "orderCancelled":
    case "orderRejected":
    case "orderConfirmed":
      return false;
    default:
      return true;
  }
}

/**
 * Choreography on order events (those ignoresOrderEvent does not ignore):
 * - an order accepted without a reservation (OrderCreated awaiting one) is
 *   reserved here, and the outcome published as ReservationSucceeded or
 *   ReservationFailed for the order service;
 * - a cancelled or rejected order's stock is released (idempotent, leaving a
 *   tombstone, so it is safe next to the order service's own ReleaseStock);
 * - a confirmed order's reservation is marked, so it never expires.
 */
export function handleOrderEvents(store: InventoryStore, outbox: Outbox, clock: () => number = Date.now): EventHandler {
  return (event) => {
    const { payload } = event;
    // Its events join the trace through the CONSUMER span, active while an event is applied.
    const meta = { requestId: event.requestId };
    if (payload.case === "orderCreated" && payload.value.awaitingReservation && payload.value.order) {
      const order = payload.value.order;
      const lines = order.items.map((item) => ({ sku: item.sku, quantity: item.quantity }));
      try {
        const reservation = store.reserve(order.id, lines, meta);
        outbox.append(newEvent(order.id, 1, clock(), { case: "reservationSucceeded", value: { reservation: reservationMessage(reservation) } }, meta));
      } catch (error) {
        if (!(error instanceof OrderlyError) || !refusals.has(error.reason)) throw error;
        outbox.append(
          newEvent(order.id, 1, clock(), { case: "reservationFailed", value: { orderId: order.id, reason: error.reason, metadata: { ...error.metadata } } }, meta),
        );
      }
    } else if (payload.case === "orderCancelled" || payload.case === "orderRejected") {
      store.release(event.aggregateId, meta);
    } else if (payload.case === "orderConfirmed") {
      store.markOrderConfirmed(event.aggregateId);
    }
  };
}
