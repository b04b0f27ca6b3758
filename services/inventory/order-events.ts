import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { Order } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { newEvent, type EventHandler, type EventMeta, type Outbox } from "../../shared/events/index.js";
import { reservationMessage } from "./messages.js";
import type { InventoryStore } from "./store.js";

/** Reasons a reservation is refused for good (any other error is retried by the consumer). */
const refusals = new Set(["INSUFFICIENT_STOCK", "UNKNOWN_SKU", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "RESERVATION_MISMATCH", "VALIDATION_FAILED"]);

/** The inventory's consumer of order events: its handler, and the events that handler has nothing to do with. */
export interface OrderEventHandling {
  handle: EventHandler;
  ignores: (event: Event) => boolean;
}

/**
 * Choreography on order events:
 * - an order accepted without a reservation (OrderCreated awaiting one) is
 *   reserved here, and the outcome published as ReservationSucceeded or
 *   ReservationFailed for the order service;
 * - a cancelled or rejected order's stock is released (idempotent, leaving a
 *   tombstone, so it is safe next to the order service's own ReleaseStock);
 * - a confirmed order's reservation is marked, so it never expires.
 * Any other event is ignored, such as an OrderCreated that awaits no
 * reservation (announced with its order's decision): one function says what
 * an event asks of the inventory, and both `handle` and `ignores` ask it.
 */
export function orderEventHandling(store: InventoryStore, outbox: Outbox, clock: () => number = Date.now): OrderEventHandling {
  const reserve = (order: Order, meta: EventMeta) => {
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
  };
  /** The work an event asks of the inventory, or undefined when it asks none. */
  const workOf = (event: Event): (() => void) | undefined => {
    const { payload } = event;
    // Its events join the trace through the CONSUMER span, active while an event is applied.
    const meta = { requestId: event.requestId };
    switch (payload.case) {
      case "orderCreated": {
        const order = payload.value.awaitingReservation ? payload.value.order : undefined;
        return order && (() => reserve(order, meta));
      }
      case "orderCancelled":
      case "orderRejected":
        return () => store.release(event.aggregateId, meta);
      case "orderConfirmed":
        return () => store.markOrderConfirmed(event.aggregateId);
      default:
        return undefined;
    }
  };
  return {
    handle: (event) => workOf(event)?.(),
    ignores: (event) => workOf(event) === undefined,
  };
}
