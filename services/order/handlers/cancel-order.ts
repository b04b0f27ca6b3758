import type { MessageInitShape } from "@bufbuild/protobuf";
import type { InventoryService } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { CancelOrderRequest, CancelOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { CallContext, Client } from "../../../shared/grpc/index.js";
import { Status, type OrderStore } from "../store.js";
import { findOrder } from "./get-order.js";
import { orderMessage } from "../messages.js";

/** What CancelOrder needs. */
export interface CancelOrderDeps {
  store: OrderStore;
  inventory: Client<typeof InventoryService>;
  defaultBudgetMs: number;
}

/**
 * CancelOrder: releases the order's stock on the inventory service, then
 * marks it CANCELLED. Releasing first means a failure leaves the order as it
 * was (the client may retry) and never a cancelled order holding stock.
 */
export function cancelOrder(deps: CancelOrderDeps) {
  return async (request: CancelOrderRequest, context: CallContext): Promise<MessageInitShape<typeof CancelOrderResponseSchema>> => {
    const order = findOrder(deps.store, request.id, context.principal);
    if (order.status === Status.CANCELLED) return { order: orderMessage(order) };
    if (order.status === Status.REJECTED) {
      throw new OrderlyError("ORDER_NOT_CANCELLABLE", `order ${order.id} was rejected and cannot be cancelled`, {
        metadata: { orderId: order.id },
      });
    }
    await deps.inventory.releaseStock(
      { orderId: order.id },
      { deadline: context.deadline ?? Date.now() + deps.defaultBudgetMs, signal: context.signal, requestId: context.requestId },
    );
    return { order: orderMessage(deps.store.cancel(order.id, { requestId: context.requestId })!) };
  };
}
