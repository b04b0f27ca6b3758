import { fromBinary } from "@bufbuild/protobuf";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";

/**
 * An event that can never be applied, whatever is retried: a handler throws
 * it for an event whose content it refuses (a version no row can hold, say).
 * Such an event is dead-lettered on its first delivery, not retried.
 */
export class InvalidEvent extends Error {
  override readonly name: string = "InvalidEvent";
}

/** The message could not be decoded into an Event. */
export class UndecodableEvent extends InvalidEvent {
  override readonly name = "UndecodableEvent";
}

/**
 * The Event fields of a payload this code has no name for (none when its
 * payload is known): what a newer Orderly publishes once it adds an event
 * type (README "Upgrading": consumers before producers).
 */
export function unknownPayloadFields(event: Event): number[] {
  return event.payload.case === undefined ? (event.$unknown?.map((field) => field.no) ?? []) : [];
}

/** Whether an event's payload is of a type this code does not know (a newer version's): kept, not applied (see DeferredEvents). */
export function isOfUnknownType(event: Event): boolean {
  return unknownPayloadFields(event).length > 0;
}

/**
 * A message's Event: one with an id and a payload, of a type this code knows
 * or not (isOfUnknownType). Throws UndecodableEvent for anything else.
 */
export function decodeEvent(data: Uint8Array): Event {
  let event: Event;
  try {
    event = fromBinary(EventSchema, data);
  } catch (error) {
    throw new UndecodableEvent(`not an orderly.events.v1.Event: ${String(error)}`);
  }
  if (event.eventId === "" || (event.payload.case === undefined && !isOfUnknownType(event))) throw new UndecodableEvent("event without id or payload");
  return event;
}
