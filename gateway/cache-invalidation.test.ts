import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { expect, test } from "vitest";
import { EventSchema } from "../proto/gen/orderly/events/v1/events_pb.js";
import { aggregateOf } from "./cache-invalidation.js";

test("reads an event's aggregate id and version from its wire form, whatever else it carries", () => {
  const event = create(EventSchema, {
    eventId: "e-1",
    aggregateId: "ord_1",
    aggregateVersion: 7n,
    occurTime: timestampFromMs(1_700_000_000_000),
    requestId: "r-1",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    payload: { case: "orderCancelled", value: { order: { id: "ord_1", customerId: "alice", items: [{ sku: "A", quantity: 2 }] } } },
  });
  expect(aggregateOf(toBinary(EventSchema, event))).toEqual({ aggregateId: "ord_1", aggregateVersion: 7 });
  expect(aggregateOf(toBinary(EventSchema, create(EventSchema, {})))).toEqual({ aggregateId: "", aggregateVersion: 0 });
  expect(() => aggregateOf(new Uint8Array([0x12, 0x05, 0x61]))).toThrow();
});
