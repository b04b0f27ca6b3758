import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListOrdersRequest, ListOrdersResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { customerOrdersPage, pageOf } from "../../../shared/pagination/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { requireActFor } from "../../../shared/security/index.js";
import type { OrderStore } from "../store.js";
import { orderMessage } from "../messages.js";

/** ListOrders: a customer's orders, newest first, a page at a time. */
export function listOrders(store: OrderStore) {
  return (request: ListOrdersRequest, context: CallContext): MessageInitShape<typeof ListOrdersResponseSchema> => {
    requireActFor(context.principal, request.customerId);
    const { query, size, before } = customerOrdersPage(request.customerId, request.pageSize, request.pageToken);
    const page = pageOf(store.listByCustomer(request.customerId, before, size + 1), size, query, (order) => [order.createTime, order.id]);
    return { orders: page.rows.map(orderMessage), nextPageToken: page.nextPageToken };
  };
}
