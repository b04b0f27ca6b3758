import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GetOrderRequest, GetOrderResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { mayActFor } from "../../../shared/security/index.js";
import type { Order } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import type { ReadStore } from "../read-store.js";
import { readAtLeast, type ViewChanges } from "../view-changes.js";

/** What the query side's reads need: the read models, and the changes a read that waits for a version (readAtLeast) waits on. */
export interface ViewReadDeps {
  store: ReadStore;
  changes: ViewChanges;
}

/**
 * Reads an order view, first waiting for `minVersion` when given (readAtLeast).
 * ORDER_NOT_FOUND when unknown or not the caller's to see: an order the caller
 * may not see is answered exactly as an unknown id, with or without `minVersion`.
 */
export async function readOrder(deps: ViewReadDeps, id: string, minVersion: bigint, context: CallContext): Promise<Order> {
  const view = await readAtLeast(deps.changes, "order", id, minVersion, context, () => {
    const found = deps.store.order(id);
    return found !== undefined && mayActFor(context.principal, found.order.customerId) ? found : undefined;
  });
  if (view === undefined) throw new OrderlyError("ORDER_NOT_FOUND", `no order with id ${id}`, { metadata: { orderId: id } });
  return view.order;
}

/** GetOrder: the order view (see readOrder). */
export function getOrder(deps: ViewReadDeps) {
  return async (request: GetOrderRequest, context: CallContext): Promise<MessageInitShape<typeof GetOrderResponseSchema>> => ({
    order: await readOrder(deps, request.id, request.minVersion, context),
  });
}
