import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { NatsConnection, Subscription } from "nats";
import { EventSchema, type Event } from "../proto/gen/orderly/events/v1/events_pb.js";
import type { NatsAuth } from "../shared/config/index.js";
import { connectNats, followConnection } from "../shared/events/index.js";
import type { Logger } from "../shared/logging/index.js";
import type { ReadCache } from "./read-cache.js";

/** Field numbers of orderly.events.v1.Event the cache needs, from its descriptor. */
const AGGREGATE_ID = EventSchema.field.aggregateId.number;
const AGGREGATE_VERSION = EventSchema.field.aggregateVersion.number;

/**
 * The aggregate an event changed and its version, read from the event's
 * wire form with protobuf-es's reader, skipping every other field: the
 * cache needs two scalars, and decoding the whole event (an order with its
 * lines, timestamps) for each one cost ~5% of the gateway's CPU under writes.
 * Throws on bytes that are not a message.
 */
export function aggregateOf(bytes: Uint8Array): Pick<Event, "aggregateId"> & { aggregateVersion: number } {
  const reader = new BinaryReader(bytes);
  let aggregateId = "";
  let aggregateVersion = 0;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === AGGREGATE_ID && wireType === WireType.LengthDelimited) aggregateId = reader.string();
    else if (field === AGGREGATE_VERSION && wireType === WireType.Varint) aggregateVersion = Number(reader.int64());
    else reader.skip(wireType, field);
  }
  return { aggregateId, aggregateVersion };
}

/**
 * Listens to every Orderly event (a plain NATS subscription on the stream
 * subjects: no consumer state, nothing to ack) and drops the cached reads of
 * the aggregate each one changed. The cache is suspended (entries live at
 * most a second: see ReadCache.suspend) until the subscription is in place,
 * from each drop of the connection until it is back and subscribed, and for
 * good if the subscription ends (the server refused it, say) or the
 * connection can no longer be followed. Connects in the background.
 */
export function invalidateOnEvents(cache: ReadCache, servers: string, logger: Logger, auth?: NatsAuth): { close(): Promise<void> } {
  let nc: NatsConnection | undefined;
  let subscription: Subscription | undefined;
  let closed = false;
  /** Whether the connection is up, as of the last state change nats.js reported. */
  let up = true;
  /** Whether the events are being read (false before the subscription, and after it ended). */
  let listening = false;
  cache.suspend();
  /**
   * Resumes the cache once the server has the subscription (a flush is
   * answered after every SUB sent before it), unless the connection dropped
   * meanwhile (then its reconnect resumes it) or the subscription ended.
   */
  const resumeWhenSubscribed = async (connection: NatsConnection) => {
    try {
      await connection.flush();
    } catch {
      return;
    }
    if (up && listening && !closed && !connection.isClosed()) cache.resume();
  };
  const started = (async () => {
    // connectNats waits for a first connection however long it takes; closed meanwhile, the connection is closed once made.
    const connection = await connectNats(servers, "gateway-cache", logger, auth);
    nc = connection;
    if (closed) return await connection.close();
    subscription = connection.subscribe("orderly.>");
    listening = true;
    try {
      // Suspended while the connection is down; nats.js subscribes again as it reconnects.
      followConnection(connection, {
        down: () => {
          up = false;
          cache.suspend();
        },
        up: () => {
          up = true;
          void resumeWhenSubscribed(connection);
        },
      }).done.catch((error: unknown) => {
        listening = false;
        cache.suspend();
        logger.warn({ err: error }, "cache invalidation stopped following the NATS connection; cached reads live at most a second");
      });
      await resumeWhenSubscribed(connection);
      for await (const msg of subscription) {
        try {
          const { aggregateId, aggregateVersion } = aggregateOf(msg.data);
          if (aggregateId !== "") cache.invalidate(aggregateId, aggregateVersion);
        } catch {
          // Not an Orderly event: nothing cached depends on it.
        }
      }
    } finally {
      listening = false;
      cache.suspend();
    }
  })();
  started.catch((error: unknown) => logger.warn({ err: error }, "cache invalidation stopped; cached reads live at most a second"));
  return {
    async close() {
      closed = true;
      cache.suspend();
      subscription?.unsubscribe();
      if (nc && !nc.isClosed()) await nc.close();
    },
  };
}
