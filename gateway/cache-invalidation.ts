import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "nats";
import { EventSchema } from "../proto/gen/orderly/events/v1/events_pb.js";
import type { NatsAuth } from "../shared/config/index.js";
import { connectNats } from "../shared/events/index.js";
import type { Logger } from "../shared/logging/index.js";
import type { ReadCache } from "./read-cache.js";

/**
 * Listens to every Orderly event (a plain NATS subscription on the stream
 * subjects: no consumer state, nothing to ack) and drops the cached reads of
 * the aggregate each one changed. Connects in the background; until then the
 * TTL alone bounds staleness.
 */
export function invalidateOnEvents(cache: ReadCache, servers: string, logger: Logger, auth?: NatsAuth): { close(): Promise<void> } {
  let nc: NatsConnection | undefined;
  let subscription: Subscription | undefined;
  let closed = false;
  const started = (async () => {
    nc = await connectNats(servers, "gateway-cache", logger, auth);
    if (closed) return;
    subscription = nc.subscribe("orderly.>");
    for await (const msg of subscription) {
      try {
        const event = fromBinary(EventSchema, msg.data);
        cache.invalidate(event.aggregateId, Number(event.aggregateVersion));
      } catch {
        // Not an Orderly event: nothing cached depends on it.
      }
    }
  })();
  started.catch((error: unknown) => logger.warn({ err: error }, "cache invalidation stopped"));
  return {
    async close() {
      closed = true;
      subscription?.unsubscribe();
      if (nc && !nc.isClosed()) await nc.close();
    },
  };
}
