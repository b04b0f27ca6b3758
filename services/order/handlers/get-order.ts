import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GetOrderRequest, GetOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import { Violations } from "../../../shared/validation/index.js";
import type { OrderRecord, OrderStore } from "../store.js";
import { isPlausibleOrderId, orderMessage } from "../messages.js";

/** Loads an order by a client-supplied id: VALIDATION_FAILED for a malformed id, ORDER_NOT_FOUND for an unknown one. */
export function findOrder(store: OrderStore, id: string): OrderRecord {
  const violations = new Violations();
  violations.check(isPlausibleOrderId(id), "id", "must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'");
  violations.throwIfAny();
  const order = store.get(id);
  if (order === undefined) throw new OrderlyError("ORDER_NOT_FOUND", `no order with id ${id}`, { metadata: { orderId: id } });
  return order;
}

/** GetOrder: one order by id. */
export function getOrder(store: OrderStore) {
  return (request: GetOrderRequest): MessageInitShape<typeof GetOrderResponseSchema> => ({
    order: orderMessage(findOrder(store, request.id)),
  });
}
