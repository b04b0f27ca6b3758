import { consumerNames, streams, type ConsumerSpec } from "../../shared/events/index.js";
import type { Projector } from "./projector.js";
import type { ViewChanges } from "./view-changes.js";

/** The durable consumers that feed the read models: one per stream; a new query.db is rebuilt from the streams. */
export function projectionConsumers(name: string, projector: Projector, changes: ViewChanges): ConsumerSpec[] {
  return [
    {
      stream: streams.orders.name,
      durable: consumerNames.projection(name, "orders"),
      filterSubject: "orderly.orders.>",
      handle: projector.handle,
      onApplied: (event) => changes.changed(event.aggregateId, Number(event.aggregateVersion)),
      rebuildsFromStream: true,
    },
    { stream: streams.inventory.name, durable: consumerNames.projection(name, "inventory"), filterSubject: "orderly.inventory.>", handle: projector.handle, rebuildsFromStream: true },
  ];
}
