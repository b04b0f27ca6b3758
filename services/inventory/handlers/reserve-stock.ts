import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReserveStockRequest, ReserveStockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { causeOf, type CallContext } from "../../../shared/grpc/index.js";
import type { InventoryStore } from "../store.js";
import { reservationMessage } from "../messages.js";

/** ReserveStock: all lines or none, idempotent per order id (the proto's rules bound lines and quantities). */
export function reserveStock(store: InventoryStore) {
  return (request: ReserveStockRequest, context: CallContext): MessageInitShape<typeof ReserveStockResponseSchema> => {
    const lines = request.lines.map((line) => ({ sku: line.sku, quantity: line.quantity }));
    return { reservation: reservationMessage(store.reserve(request.orderId, lines, causeOf(context))) };
  };
}
