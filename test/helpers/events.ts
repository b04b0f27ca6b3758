import { toBinary } from "@bufbuild/protobuf";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { newEvent } from "../../shared/events/index.js";

/**
 * An event as a newer version publishes it once it adds an event type: its
 * payload in an Event field (here 30) this code has no name for. The event
 * as this code decodes it, and the bytes published.
 */
export function futureEvent(aggregateId: string, requestId?: string): { event: Event; data: Uint8Array } {
  const event = newEvent(aggregateId, 1, Date.now(), { case: undefined }, { requestId });
  return { event, data: Buffer.concat([toBinary(EventSchema, event), Buffer.from([0xf2, 0x01, 0x02, 0x08, 0x01])]) };
}
