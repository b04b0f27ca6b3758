import { create, createFileRegistry, setExtension } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptionsSchema, file_google_protobuf_descriptor } from "@bufbuild/protobuf/wkt";
import { expect, test } from "vitest";
import { ErrorsSchema, errors, file_orderly_errors_v1_errors } from "../../proto/gen/orderly/errors/v1/errors_pb.js";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { DECLARED_ONLY, declaredReasonsOf, mayAnswer } from "./declared-reasons.js";

test("every Orderly RPC declares its own refusals in the proto, each a reason that exists, and each such reason is some RPC's", () => {
  const declared = Object.fromEntries(
    [OrderService, InventoryService, QueryService].flatMap((service) => service.methods.map((method) => [`${service.name}.${method.name}`, [...declaredReasonsOf(method)]])),
  );
  expect(declared).toEqual({
    "OrderService.CreateOrder": ["INSUFFICIENT_STOCK", "UNKNOWN_SKU", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "RESERVATION_MISMATCH", "NOT_YOUR_CUSTOMER", "IDEMPOTENCY_KEY_REUSED"],
    "OrderService.GetOrder": ["ORDER_NOT_FOUND"],
    "OrderService.ListOrders": ["NOT_YOUR_CUSTOMER", "INVALID_PAGE_TOKEN"],
    "OrderService.CancelOrder": ["ORDER_NOT_FOUND", "ORDER_NOT_CANCELLABLE"],
    "InventoryService.GetItem": ["ITEM_NOT_FOUND"],
    "InventoryService.ListItems": ["INVALID_PAGE_TOKEN"],
    "InventoryService.Restock": ["STOCK_LIMIT_EXCEEDED", "IDEMPOTENCY_KEY_REUSED"],
    "InventoryService.ReserveStock": ["UNKNOWN_SKU", "INSUFFICIENT_STOCK", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "RESERVATION_MISMATCH"],
    "InventoryService.ReleaseStock": ["ORDER_NOT_ENDED"],
    "QueryService.GetOrder": ["ORDER_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "QueryService.GetOrderTimeline": ["ORDER_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "QueryService.ListCustomerOrders": ["NOT_YOUR_CUSTOMER", "INVALID_PAGE_TOKEN"],
    "QueryService.GetStockLevel": ["ITEM_NOT_FOUND", "TOO_MANY_WAITS", "VERSION_NOT_REACHED"],
    "QueryService.ListStockLevels": ["INVALID_PAGE_TOKEN"],
    "QueryService.ListDailySales": ["INVALID_PAGE_TOKEN"],
  });
  const used = new Set(Object.values(declared).flat());
  expect([...DECLARED_ONLY].filter((reason) => !used.has(reason))).toEqual([]);
});

test("an RPC may answer a reason it declares or one any call can meet, and no other RPC's", () => {
  const getItem = InventoryService.method.getItem;
  expect(["ITEM_NOT_FOUND", "DEADLINE_EXCEEDED", "ROLE_NOT_ALLOWED", "INSUFFICIENT_STOCK", "ORDER_NOT_FOUND"].map((reason) => mayAnswer(getItem, reason as never))).toEqual([true, true, true, false, false]);
});

test("a reason misspelt in a proto, or one any call can meet, is refused when the RPC's declaration is read (a service reads each at start)", () => {
  const methodDeclaring = (reasons: string[]) => {
    const options = create(MethodOptionsSchema);
    setExtension(options, errors, create(ErrorsSchema, { reasons }));
    const file = create(FileDescriptorProtoSchema, {
      name: "typo/v1/typo.proto",
      package: "typo.v1",
      syntax: "proto3",
      dependency: ["orderly/errors/v1/errors.proto", "google/protobuf/descriptor.proto"],
      messageType: [{ name: "Empty" }],
      service: [{ name: "TypoService", method: [{ name: "Get", inputType: ".typo.v1.Empty", outputType: ".typo.v1.Empty", options }] }],
    });
    const known = new Map([file_orderly_errors_v1_errors, file_google_protobuf_descriptor].map((f) => [f.name + ".proto", f]));
    return createFileRegistry(file, (name) => known.get(name)).getService("typo.v1.TypoService")!.methods[0]!;
  };
  expect(() => declaredReasonsOf(methodDeclaring(["ORDER_NOT_FUOND"]))).toThrow("typo.v1.TypoService/Get declares ORDER_NOT_FUOND: not reasons an RPC declares");
  expect(() => declaredReasonsOf(methodDeclaring(["DEADLINE_EXCEEDED"]))).toThrow("declares DEADLINE_EXCEEDED");
  expect([...declaredReasonsOf(methodDeclaring(["ORDER_NOT_FOUND"]))]).toEqual(["ORDER_NOT_FOUND"]);
});
