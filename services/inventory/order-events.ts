import type { EventHandler } from "../../shared/events/index.js";
import type { InventoryStore } from "./store.js";

/**
 * Choreography: when an order is cancelled or rejected, release whatever
 * stock it holds. Release is idempotent and leaves a tombstone, so this is
 * safe alongside the order service's own ReleaseStock call, in any order.
 */
export function releaseStockOfEndedOrders(store: InventoryStore): EventHandler {
  return (event) => {
    const { payload } = event;
    if (payload.case !== "orderCancelled" && payload.case !== "orderRejected") return;
    store.release(event.aggregateId, { requestId: event.requestId, traceparent: event.traceparent });
  };
}
