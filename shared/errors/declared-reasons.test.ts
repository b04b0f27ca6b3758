import { expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { DECLARED_ONLY, declaredReasonsOf, mayAnswer } from "./declared-reasons.js";

const rpcs = [OrderService, InventoryService, QueryService].flatMap((service) => service.methods);

test("every Orderly RPC declares its own refusals in the proto with reasons that exist, and each such reason is some RPC's", () => {
  // declaredReasonsOf throws on a name that is no reason (a typo in a proto); the services read it at start.
  const declared = new Set(rpcs.flatMap((method) => [...declaredReasonsOf(method)]));
  expect([...DECLARED_ONLY].filter((reason) => !declared.has(reason))).toEqual([]);
  expect(Object.fromEntries(rpcs.filter((method) => method.parent === OrderService).map((method) => [method.name, [...declaredReasonsOf(method)]]))).toEqual({
    CreateOrder: ["INSUFFICIENT_STOCK", "UNKNOWN_SKU", "MIXED_CURRENCIES", "RESERVATION_RELEASED", "NOT_YOUR_CUSTOMER", "IDEMPOTENCY_KEY_REUSED"],
    GetOrder: ["ORDER_NOT_FOUND"],
    ListOrders: ["NOT_YOUR_CUSTOMER", "INVALID_PAGE_TOKEN"],
    CancelOrder: ["ORDER_NOT_FOUND", "ORDER_NOT_CANCELLABLE"],
  });
});

test("an RPC may answer a reason it declares or one any call can meet, and no other RPC's", () => {
  const getItem = InventoryService.method.getItem;
  expect(["ITEM_NOT_FOUND", "DEADLINE_EXCEEDED", "ROLE_NOT_ALLOWED", "INSUFFICIENT_STOCK", "ORDER_NOT_FOUND"].map((reason) => mayAnswer(getItem, reason as never))).toEqual([true, true, true, false, false]);
});
