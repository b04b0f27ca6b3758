import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReleaseStockRequest, ReleaseStockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { causeOf, type CallContext } from "../../../shared/grpc/index.js";
import type { InventoryStore } from "../store.js";
import { reservationMessage } from "../messages.js";

/** ReleaseStock: returns an order's reserved stock; idempotent. */
export function releaseStock(store: InventoryStore) {
  return (request: ReleaseStockRequest, context: CallContext): MessageInitShape<typeof ReleaseStockResponseSchema> => {
    return { reservation: reservationMessage(store.release(request.orderId, causeOf(context))) };
  };
}
