import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GetOrderRequest, GetOrderResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { mayActFor } from "../../../shared/security/index.js";
import type { Order } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import type { ReadStore } from "../read-store.js";
import type { ViewChanges } from "../view-changes.js";

/** What the order reads need. */
export interface OrderReadDeps {
  store: ReadStore;
  changes: ViewChanges;
}

/**
 * Reads an order view, first waiting for `minVersion` when given: the
 * read-your-writes mechanism. The wait gives up at the call's answerBy, so
 * the caller gets this service's VERSION_NOT_REACHED (with the version it
 * waited for) before its own deadline. ORDER_NOT_FOUND when unknown or not
 * the caller's to see.
 *
 * An order the caller may not see is answered exactly as an unknown id, with
 * or without `minVersion`: its versions never end the wait, so neither the
 * answer nor its timing says that it exists or how far it has got.
 */
export async function readOrder(deps: OrderReadDeps, id: string, minVersion: bigint, context: CallContext): Promise<Order> {
  const visible = () => {
    const view = deps.store.order(id);
    return view !== undefined && mayActFor(context.principal, view.order.customerId) ? view : undefined;
  };
  let view = visible();
  while (minVersion > 0n && (view === undefined || BigInt(view.version) < minVersion)) {
    await deps.changes.waitFor(id, minVersion, context.answerBy, context.signal, context.principal?.subject ?? "");
    view = visible();
  }
  if (view === undefined) throw new OrderlyError("ORDER_NOT_FOUND", `no order with id ${id}`, { metadata: { orderId: id } });
  return view.order;
}

/** GetOrder: the order view (see readOrder). */
export function getOrder(deps: OrderReadDeps) {
  return async (request: GetOrderRequest, context: CallContext): Promise<MessageInitShape<typeof GetOrderResponseSchema>> => ({
    order: await readOrder(deps, request.id, request.minVersion, context),
  });
}
