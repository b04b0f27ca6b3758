import type { MessageInitShape } from "@bufbuild/protobuf";
import type { InventoryService } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { CancelOrderRequest, CancelOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError, isTransient } from "../../../shared/errors/index.js";
import { announceStock, callOptionsOf, causeOf, type CallContext, type Client } from "../../../shared/grpc/index.js";
import { Status, type OrderStore } from "../store.js";
import { findOrder } from "./get-order.js";
import { orderMessage } from "../messages.js";

/** What CancelOrder needs. */
export interface CancelOrderDeps {
  store: OrderStore;
  inventory: Client<typeof InventoryService>;
}

/**
 * CancelOrder: marks the order CANCELLED, with its OrderCancelled event,
 * then releases its stock on the inventory service at once. The event
 * releases it too (idempotently), so the stock is freed even when that call
 * fails or this service dies right after the commit. (Releasing first left
 * a window: killed between the two, the order stayed CONFIRMED with its
 * stock released, to be sold again.)
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
    const cancelled = deps.store.cancel(order.id, causeOf(context))!;
    try {
      // The cancel is done: the client hears so before its deadline, however long the inventory takes.
      const { reservation } = await deps.inventory.releaseStock({ orderId: order.id }, callOptionsOf(context));
      announceStock(context, reservation?.lines ?? []);
    } catch (error) {
      // The order is cancelled; its OrderCancelled event releases the stock when the inventory gets it.
      // Expected while the inventory is down or its breaker open (a line per cancel): its reason, not a stack; anything else with its stack.
      const err = OrderlyError.from(error);
      const why = isTransient(err) ? { reason: err.reason, message: err.message } : { err: error };
      context.logger.warn({ orderId: order.id, ...why }, "could not release a cancelled order's stock at once; its event will");
    }
    return { order: orderMessage(cancelled) };
  };
}
