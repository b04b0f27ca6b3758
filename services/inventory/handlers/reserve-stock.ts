import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ReserveStockRequest, ReserveStockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { Violations } from "../../../shared/validation/index.js";
import type { InventoryStore } from "../store.js";
import { reservationMessage } from "../messages.js";

/** The most lines one reservation may hold. */
export const MAX_LINES = 100;
/** The most units one line may reserve. */
export const MAX_LINE_QUANTITY = 1000;

/** Checks an order id as the inventory receives it. */
export function checkOrderId(violations: Violations, orderId: string): void {
  violations.check(orderId.length >= 1 && orderId.length <= 64, "order_id", "must be 1-64 characters");
}

/** ReserveStock: all lines or none, idempotent per order id. */
export function reserveStock(store: InventoryStore) {
  return (request: ReserveStockRequest, context: CallContext): MessageInitShape<typeof ReserveStockResponseSchema> => {
    const violations = new Violations();
    checkOrderId(violations, request.orderId);
    violations.check(request.lines.length >= 1 && request.lines.length <= MAX_LINES, "lines", `must hold 1-${MAX_LINES} lines`);
    const seen = new Set<string>();
    request.lines.forEach((line, i) => {
      violations.identifier(line.sku, `lines[${i}].sku`);
      violations.intRange(line.quantity, 1, MAX_LINE_QUANTITY, `lines[${i}].quantity`);
      violations.check(!seen.has(line.sku), `lines[${i}].sku`, "must not repeat a SKU of another line");
      seen.add(line.sku);
    });
    violations.throwIfAny();
    const lines = request.lines.map((line) => ({ sku: line.sku, quantity: line.quantity }));
    return { reservation: reservationMessage(store.reserve(request.orderId, lines, { requestId: context.requestId })) };
  };
}
