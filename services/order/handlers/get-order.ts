import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GetOrderRequest, GetOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { mayActFor, type Principal } from "../../../shared/security/index.js";
import type { OrderRecord, OrderStore } from "../store.js";
import { orderMessage } from "../messages.js";

/**
 * Loads an order by a client-supplied id for a principal: ORDER_NOT_FOUND
 * when unknown, and for another customer's order (its existence is not
 * revealed).
 */
export function findOrder(store: OrderStore, id: string, principal: Principal | undefined): OrderRecord {
  const order = store.get(id);
  if (order === undefined || !mayActFor(principal, order.customerId)) throw new OrderlyError("ORDER_NOT_FOUND", `no order with id ${id}`, { metadata: { orderId: id } });
  return order;
}

/** GetOrder: one order by id. */
export function getOrder(store: OrderStore) {
  return (request: GetOrderRequest, context: CallContext): MessageInitShape<typeof GetOrderResponseSchema> => ({
    order: orderMessage(findOrder(store, request.id, context.principal)),
  });
}
