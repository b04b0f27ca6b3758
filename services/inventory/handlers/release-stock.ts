import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReleaseStockRequest, ReleaseStockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import { callOptionsOf, causeOf, type CallContext } from "../../../shared/grpc/index.js";
import type { InventoryStore } from "../store.js";
import { reservationMessage } from "../messages.js";
import type { FateOf } from "../reservation-expiry.js";

/**
 * ReleaseStock: returns an order's reserved stock; idempotent. The order
 * service calls it for the orders it cancelled or rejected. Anyone else (an
 * admin) may release only the stock of an order the order service says has
 * ended: a confirmed or pending order's stock, released, would be sold twice.
 */
export function releaseStock(store: InventoryStore, fateOf: FateOf) {
  return async (request: ReleaseStockRequest, context: CallContext): Promise<MessageInitShape<typeof ReleaseStockResponseSchema>> => {
    if (!context.principal?.roles.includes("service")) {
      // Within this call: its caller's deadline and cancel bound the question too.
      const fate = await fateOf(request.orderId, callOptionsOf(context));
      if (fate !== "ended") {
        throw new OrderlyError("ORDER_NOT_ENDED", `order ${request.orderId} is ${fate}: its stock is released when it is cancelled or rejected`, {
          metadata: { orderId: request.orderId },
        });
      }
    }
    return { reservation: reservationMessage(store.release(request.orderId, causeOf(context))) };
  };
}
