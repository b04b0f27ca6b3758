import type { EventHandler } from "../../shared/events/index.js";
import { isReason } from "../../shared/errors/index.js";
import { pricingOf, recordRefusal } from "./settle-order.js";
import { Status, type OrderStore } from "./store.js";

/**
 * The async half of CreateOrder: confirms or rejects an order accepted
 * without a reservation when the inventory service reports the outcome.
 * Both store changes are conditional on PENDING, so a late or repeated
 * outcome changes nothing.
 */
export function applyReservationOutcomes(store: OrderStore): EventHandler {
  return (event) => {
    // Its events join the trace through the CONSUMER span, active while an event is applied.
    const meta = { requestId: event.requestId };
    const { payload } = event;
    if (payload.case === "reservationSucceeded" && payload.value.reservation) {
      const order = store.get(payload.value.reservation.orderId);
      if (order?.status === Status.PENDING) store.confirm(order.id, pricingOf(payload.value.reservation), meta);
    } else if (payload.case === "reservationFailed") {
      const order = store.get(payload.value.orderId);
      if (order?.status === Status.PENDING && isReason(payload.value.reason)) {
        recordRefusal(store, { ...order, announced: true }, payload.value.reason, { ...payload.value.metadata }, meta);
      }
    }
  };
}
