import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import { traceparentIn } from "../observability/trace-context.js";

/** The payload of an event (one case of Event.payload). */
export type EventPayload = MessageInitShape<typeof EventSchema>["payload"];

/** Who caused a change: carried into the events it produces. */
export interface EventMeta {
  requestId?: string;
  /** The trace the change belongs to (a call's, say); the active context when not given. */
  traceContext?: Context;
}

/** A new event with a fresh id, carrying the trace context of `meta` (else the active one). */
export function newEvent(aggregateId: string, aggregateVersion: number, occurTimeMs: number, payload: EventPayload, meta: EventMeta = {}): Event {
  return create(EventSchema, {
    eventId: randomUUID(),
    aggregateId,
    aggregateVersion: BigInt(aggregateVersion),
    occurTime: timestampFromMs(occurTimeMs),
    requestId: meta.requestId ?? "",
    traceparent: traceparentIn(meta.traceContext) ?? "",
    payload,
  });
}
