import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import type { CreateOrderRequest, CreateOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { HTTP_CODE_HEADER, type CallContext } from "../../../shared/grpc/index.js";
import { Violations } from "../../../shared/validation/index.js";
import { orderMessage, rejectionError } from "../messages.js";
import { settleOrder, type SettleDeps } from "../settle-order.js";
import { Status, type OrderRecord } from "../store.js";

/** The most lines one order may hold. */
export const MAX_ORDER_LINES = 100;
/** The most units of one SKU per order. */
export const MAX_LINE_QUANTITY = 1000;

/** What CreateOrder needs. */
export interface CreateOrderDeps extends SettleDeps {
  newId: () => string;
  /** Deadline budget (ms) for calls made on behalf of a caller that set none. */
  defaultBudgetMs: number;
  /** The part of the caller's budget kept to answer (202 when degrading, else 504) after a reservation runs out of time (ms). */
  degradeMarginMs: number;
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

/** What the client is told: the order (202 Accepted while PENDING), or the rejection. */
function outcome(order: OrderRecord, context: CallContext): Response {
  if (order.status === Status.REJECTED) throw rejectionError(order);
  if (order.status === Status.PENDING) context.responseHeaders[HTTP_CODE_HEADER] = "202";
  return { order: orderMessage(order) };
}

/**
 * CreateOrder: records the order as PENDING (once per idempotency key),
 * reserves its stock on the inventory service within the caller's deadline,
 * then confirms or rejects it. When the inventory cannot answer in time, the
 * order is accepted as PENDING (202) and reserved through events (degrade),
 * or the error is returned (fail fast) and a retry with the same key — or the
 * recovery loop — resumes it; reserving is idempotent per order id, so
 * nothing is reserved twice.
 */
export function createOrder(deps: CreateOrderDeps) {
  return async (request: CreateOrderRequest, context: CallContext): Promise<Response> => {
    validate(request);
    const customerId = request.order!.customerId;
    const items = request.order!.items.map((item) => ({ sku: item.sku, quantity: item.quantity }));
    const requestHash = createHash("sha256").update(JSON.stringify([customerId, items])).digest("base64url");
    const begun = deps.store.begin({ id: deps.newId(), customerId, items, requestId: request.requestId, requestHash });
    if (begun.replay) return outcome(begun.replay, context);
    if (begun.order.status !== Status.PENDING || begun.order.announced) return outcome(begun.order, context);
    const deadline = context.deadline ?? Date.now() + deps.defaultBudgetMs;
    const settled = await settleOrder(deps, begun.order, {
      // Keep a margin of the budget to answer (202, or a clean 504) before the caller's own deadline.
      deadline: deadline - deps.degradeMarginMs,
      signal: context.signal,
      requestId: context.requestId,
    });
    return outcome(settled, context);
  };
}
