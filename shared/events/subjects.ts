import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";

/** The JetStream streams Orderly publishes to, and the subjects each captures. */
export const streams = {
  orders: { name: "ORDERS", subjects: ["orderly.orders.>"] },
  inventory: { name: "INVENTORY", subjects: ["orderly.inventory.>"] },
} as const;

/** A stream by its key in `streams`. */
export type StreamKey = keyof typeof streams;

/**
 * The names of the services' durable consumers (and the rebuild's), in one
 * place: the services run them, and the dev NATS permissions allow each user
 * its own. The query's are named after QUERY_CONSUMER_NAME ("query").
 */
export const consumerNames = {
  inventoryOrderEvents: "inventory-order-events",
  orderReservationOutcomes: "order-reservation-outcomes",
  /** The query service's projection of a stream (`query-orders`). */
  projection: (name: string, stream: StreamKey) => `${name}-${stream}`,
  /** What `npm run rebuild` reads a stream with (`query-rebuild-orders`). */
  rebuild: (name: string, stream: StreamKey) => `${name}-rebuild-${stream}`,
} as const;

/** The subject on which the process running the durable consumers named after `name` answers who it is (with the nats CLI: `nats --inbox-prefix _INBOX_query req --replies 0 --timeout 1s _ORDERLY.consumers.query ""`, as a user allowed it: the answer goes to the query user's inbox; claimConsumers). */
export function claimSubject(name: string): string {
  return `_ORDERLY.consumers.${name}`;
}

const subjectByCase: Record<NonNullable<Event["payload"]["case"]>, string> = {
  orderCreated: "orderly.orders.created",
  orderConfirmed: "orderly.orders.confirmed",
  orderRejected: "orderly.orders.rejected",
  orderCancelled: "orderly.orders.cancelled",
  stockRestocked: "orderly.inventory.restocked",
  stockReserved: "orderly.inventory.reserved",
  stockReleased: "orderly.inventory.released",
  reservationSucceeded: "orderly.inventory.reservation.succeeded",
  reservationFailed: "orderly.inventory.reservation.failed",
};

/** The subject an event is published on, by its payload. */
export function subjectOf(event: Event): string {
  const kind = event.payload.case;
  if (kind === undefined) throw new Error(`event ${event.eventId} has no payload`);
  return subjectByCase[kind];
}
