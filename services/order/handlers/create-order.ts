import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import type { CreateOrderRequest, CreateOrderResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { HTTP_CODE_HEADER, announceStock, callOptionsOf, causeOf, type CallContext } from "../../../shared/grpc/index.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { EventMeta } from "../../../shared/events/index.js";
import { requireActFor } from "../../../shared/security/index.js";
import { orderMessage, orderNamed, rejectionError } from "../messages.js";
import { settleOrder, type SettleDeps } from "../settle-order.js";
import { Status, type OrderRecord, type OrderStore } from "../store.js";

/** What CreateOrder needs. */
export interface CreateOrderDeps extends SettleDeps {
  newId: () => string;
}

type Response = MessageInitShape<typeof CreateOrderResponseSchema>;

/** How many orders a request begins: a second when a concurrent request with its key discarded the first. */
const MAX_ATTEMPTS = 2;

/**
 * What the client is told: the order (202 Accepted while PENDING), or the rejection. A confirmed order tells the gateway
 * the versions its reservation left its items' stock at, however it was confirmed (this call, events, a call before).
 */
function outcome(order: OrderRecord, context: CallContext): Response {
  if (order.status === Status.REJECTED) throw rejectionError(order);
  if (order.status === Status.PENDING) context.responseHeaders[HTTP_CODE_HEADER] = "202";
  if (order.status === Status.CONFIRMED) announceStock(context, order.items);
  return { order: orderMessage(order) };
}

/**
 * An error of a call that recorded its order (the inventory slow, down or its breaker open under fail-fast; the caller
 * gone): the order stays, so the error names it (`orderId`, `orderVersion`), and a client that sent no key learns that
 * it exists, to read it or cancel it, rather than place a second by trying again. One still PENDING is first announced,
 * to be reserved through events as a 202's is: an order its client was told of is never discarded (an unknown SKU then
 * rejects it), and a read finds it. Only an OrderlyError: anything else (a storage failure) is left to the server's
 * translation, as it stands, and so is an error whose order could not be announced (it is not named).
 */
function announceAndName(store: OrderStore, orderId: string, error: unknown, meta: EventMeta): unknown {
  if (!(error instanceof OrderlyError) || error.metadata.orderVersion !== undefined) return error;
  let order: OrderRecord | undefined;
  try {
    order = store.get(orderId);
    if (order?.status === Status.PENDING && !order.announced) order = store.acceptAwaitingReservation(orderId, meta).order;
  } catch {
    return error;
  }
  if (order === undefined) return error;
  const metadata = { ...error.metadata, ...orderNamed(order) };
  return new OrderlyError(error.reason, error.message, { code: error.code, metadata, violations: [...error.violations], cause: error.cause ?? error, remote: error.remote });
}

/**
 * CreateOrder: records the order as PENDING (once per idempotency key),
 * reserves its stock on the inventory service within the caller's deadline,
 * then confirms or rejects it. When the inventory cannot answer in time, the
 * order is accepted as PENDING (202) and reserved through events (degrade),
 * or the error is returned (fail fast), naming the order, which is then
 * reserved through events too (announceAndName); under fail-fast a retry with
 * the same key tries the reservation again at once. Reserving is idempotent
 * per order id, so nothing is reserved twice.
 */
export function createOrder(deps: CreateOrderDeps) {
  return async (request: CreateOrderRequest, context: CallContext): Promise<Response> => {
    // The proto's rules have checked the order (lines, quantities, SKUs); the caller must act for its customer.
    const customerId = request.order!.customerId;
    requireActFor(context.principal, customerId);
    const items = request.order!.items.map((item) => ({ sku: item.sku, quantity: item.quantity }));
    const requestHash = createHash("sha256").update(JSON.stringify([customerId, items])).digest("base64url");
    for (let attempt = 1; ; attempt++) {
      const id = deps.newId();
      const begun = deps.store.begin({ id, customerId, items, requestId: request.requestId, requestHash }, causeOf(context));
      if (begun.replay) return outcome(begun.replay, context);
      // An order accepted to be reserved through events is answered as it is (202 while PENDING); under fail-fast, where a
      // 202 is never the answer, a retry of its key tries the reservation again (idempotent per order id).
      if (begun.order.status !== Status.PENDING || (begun.order.announced && deps.degrade)) return outcome(begun.order, context);
      // Settled or not by the call's answer-by time, the caller hears (202, or a clean 504) before its own deadline.
      const settled = await settleOrder(deps, begun.order, callOptionsOf(context), context.logger, begun.order.id === id).catch((error: unknown) => {
        throw announceAndName(deps.store, begun.order.id, error, causeOf(context));
      });
      if (settled !== undefined) return outcome(settled, context);
      // A request with the same key found a SKU unknown and discarded the order (answering UNKNOWN_SKU records nothing),
      // while this one's reservation found every SKU (restocked in between): it begins afresh, as it would have after that
      // answer. SKUs are never removed, so the order it begins now cannot be discarded for an unknown SKU again.
      if (attempt === MAX_ATTEMPTS) throw new OrderlyError("INTERNAL", "the order was discarded again while it was reserved");
    }
  };
}
