import type { Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { consumerNames, streams, type ConsumerSpec } from "../../shared/events/index.js";
import type { Projector } from "./projector.js";
import type { ViewChanges } from "./view-changes.js";

/** The events that change a SKU's stock level (their aggregate the SKU). */
const stockChanges = new Set<Event["payload"]["case"]>(["stockRestocked", "stockReserved", "stockReleased"]);

/** The durable consumers that feed the read models: one per stream; a new query.db is rebuilt from the streams. */
export function projectionConsumers(name: string, projector: Projector, changes: ViewChanges): ConsumerSpec[] {
  return [
    {
      stream: streams.orders.name,
      durable: consumerNames.projection(name, "orders"),
      filterSubject: "orderly.orders.>",
      handle: projector.handle,
      onApplied: (event) => changes.changed("order", event.aggregateId, Number(event.aggregateVersion)),
      rebuildsFromStream: true,
    },
    {
      stream: streams.inventory.name,
      durable: consumerNames.projection(name, "inventory"),
      filterSubject: "orderly.inventory.>",
      handle: projector.handle,
      // The stream's reservation outcomes are of orders (the order service's to apply): only stock changes wake stock reads.
      onApplied: (event) => {
        if (stockChanges.has(event.payload.case)) changes.changed("stock", event.aggregateId, Number(event.aggregateVersion));
      },
      rebuildsFromStream: true,
    },
  ];
}
