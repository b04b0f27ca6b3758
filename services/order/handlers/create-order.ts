import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import type { InventoryService } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { CreateOrderRequest, CreateOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { CallContext, Client } from "../../../shared/grpc/index.js";
import { Violations } from "../../../shared/validation/index.js";
import { Status, type OrderRecord, type OrderStore } from "../store.js";
import { orderMessage, rejectionError } from "../messages.js";

/** The most lines one order may hold. */
export const MAX_ORDER_LINES = 100;
/** The most units of one SKU per order. */
export const MAX_LINE_QUANTITY = 1000;

/** What CreateOrder needs. */
export interface CreateOrderDeps {
  store: OrderStore;
  inventory: Client<typeof InventoryService>;
  newId: () => string;
  /** Deadline budget (ms) for calls made on behalf of a caller that set none. */
  defaultBudgetMs: number;
}

type Response = MessageInitShape<typeof CreateOrderResponseSchema>;

function validate(request: CreateOrderRequest): void {
  const violations = new Violations();
  const order = request.order;
  if (!violations.check(order !== undefined, "order", "is required")) violations.throwIfAny();
  violations.identifier(order!.customerId, "order.customer_id");
  violations.check(
    order!.items.length >= 1 && order!.items.length <= MAX_ORDER_LINES,
    "order.items",
    `must hold 1-${MAX_ORDER_LINES} lines`,
  );
  const seen = new Set<string>();
  order!.items.forEach((item, i) => {
    violations.identifier(item.sku, `order.items[${i}].sku`);
    violations.intRange(item.quantity, 1, MAX_LINE_QUANTITY, `order.items[${i}].quantity`);
    violations.check(!seen.has(item.sku), `order.items[${i}].sku`, "must not repeat the SKU of another line");
    seen.add(item.sku);
  });
  violations.check(
    /^[\x21-\x7e]{0,128}$/.test(request.requestId),
    "request_id",
    "must be at most 128 printable ASCII characters",
  );
  violations.throwIfAny();
}

/** What the client is told about a decided order: the order, or the rejection. */
function outcome(order: OrderRecord): Response {
  if (order.status === Status.REJECTED) throw rejectionError(order);
  return { order: orderMessage(order) };
}

/**
 * CreateOrder: records the order as PENDING (once per idempotency key),
 * reserves its stock on the inventory service within the caller's deadline,
 * then confirms or rejects it. When the reservation's outcome is unknown
 * (inventory unavailable, deadline) the order stays PENDING and the error is
 * returned; a retry with the same key resumes it, and reserving is
 * idempotent per order id, so nothing is reserved twice.
 */
export function createOrder(deps: CreateOrderDeps) {
  return async (request: CreateOrderRequest, context: CallContext): Promise<Response> => {
    validate(request);
    const customerId = request.order!.customerId;
    const items = request.order!.items.map((item) => ({ sku: item.sku, quantity: item.quantity }));
    const requestHash = createHash("sha256").update(JSON.stringify([customerId, items])).digest("base64url");
    const begun = deps.store.begin({ id: deps.newId(), customerId, items, requestId: request.requestId, requestHash });
    if (begun.replay) return outcome(begun.replay);
    if (begun.order.status !== Status.PENDING) return outcome(begun.order);
    const orderId = begun.order.id;
    try {
      const { reservation } = await deps.inventory.reserveStock(
        { orderId, lines: items },
        {
          deadline: context.deadline ?? Date.now() + deps.defaultBudgetMs,
          signal: context.signal,
          requestId: context.requestId,
        },
      );
      return outcome(
        deps.store.confirm(
          orderId,
          {
            items: reservation!.lines.map((line) => ({ sku: line.sku, quantity: line.quantity, unitPriceMinor: Number(line.unitPriceMinor) })),
            totalMinor: Number(reservation!.totalMinor),
            currencyCode: reservation!.currencyCode,
          },
          { requestId: context.requestId },
        ),
      );
    } catch (error) {
      const err = OrderlyError.from(error);
      switch (err.reason) {
        case "INSUFFICIENT_STOCK":
        case "MIXED_CURRENCIES":
          return outcome(deps.store.reject(orderId, err.reason, { ...err.metadata }, { requestId: context.requestId }));
        case "UNKNOWN_SKU":
          deps.store.discard(orderId);
          throw err;
        case "RESERVATION_RELEASED":
          // Cancelled while we were reserving: the cancel won.
          return outcome(deps.store.get(orderId)!);
        default:
          throw err;
      }
    }
  };
}
