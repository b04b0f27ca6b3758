import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect, test } from "vitest";
import { GetItemRequestSchema } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import "./utf8.js";

test("a leading byte order mark survives a protobuf round trip", () => {
  const sent = create(GetItemRequestSchema, { sku: "\uFEFFalice" });
  expect(fromBinary(GetItemRequestSchema, toBinary(GetItemRequestSchema, sent)).sku).toBe("\uFEFFalice");
});
