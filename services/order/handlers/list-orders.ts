import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListOrdersRequest, ListOrdersResponseSchema } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import { Violations } from "../../../shared/validation/index.js";
import type { OrderStore } from "../store.js";
import { orderMessage } from "../messages.js";

/** ListOrders: a customer's orders, newest first, a page at a time. */
export function listOrders(store: OrderStore) {
  return (request: ListOrdersRequest): MessageInitShape<typeof ListOrdersResponseSchema> => {
    const violations = new Violations();
    violations.identifier(request.customerId, "customer_id");
    violations.throwIfAny();
    const size = pageSize(request.pageSize);
    const query = `orders:${request.customerId}`;
    const cursor = decodePageToken(query, request.pageToken);
    const before = cursor === undefined ? undefined : { createTime: Number(cursor[0]), id: String(cursor[1]) };
    const page = pageOf(store.listByCustomer(request.customerId, before, size + 1), size, query, (order) => [order.createTime, order.id]);
    return { orders: page.rows.map(orderMessage), nextPageToken: page.nextPageToken };
  };
}
