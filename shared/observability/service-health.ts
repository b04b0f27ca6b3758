import type { EventRuntime } from "../events/index.js";
import { HealthState } from "../grpc/index.js";
import type { Logger } from "../logging/index.js";
import { DescriptorWatch } from "./descriptors.js";

/** What a gRPC service's health is read from, besides its file descriptors. */
export interface ServiceHealthSources {
  /** False once the service begins to close. */
  serving: () => boolean;
  /** Whether its database is open. */
  database: () => boolean;
  events: EventRuntime;
}

/**
 * A service's health, the same checks for each: serving, its database open,
 * its NATS connection (`nats`) and its streams and consumers set up
 * (`events`), and file descriptors to spare (a DescriptorWatch). Without NATS
 * or near the descriptor limit it is degraded (it still answers calls);
 * with any other check failing, not ready. `close` stops the descriptor
 * watch.
 */
export function serviceHealth(logger: Logger, sources: ServiceHealthSources): { health: HealthState; close: () => void } {
  const { events } = sources;
  const descriptors = new DescriptorWatch(logger);
  const health = new HealthState(
    { serving: sources.serving, database: sources.database, nats: () => events.isConnected(), events: () => events.isSetUp(), descriptors: () => descriptors.left() },
    { degrading: ["nats", "descriptors"] },
  );
  return { health, close: () => descriptors.close() };
}
