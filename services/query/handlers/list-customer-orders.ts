import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListCustomerOrdersRequest, ListCustomerOrdersResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { customerOrdersPage, pageOf } from "../../../shared/pagination/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { requireActFor } from "../../../shared/security/index.js";
import type { ReadStore } from "../read-store.js";

/** ListCustomerOrders: a customer's orders from the read model, newest first. */
export function listCustomerOrders(store: ReadStore) {
  return (request: ListCustomerOrdersRequest, context: CallContext): MessageInitShape<typeof ListCustomerOrdersResponseSchema> => {
    requireActFor(context.principal, request.customerId);
    const { query, size, before } = customerOrdersPage(request.customerId, request.pageSize, request.pageToken);
    const page = pageOf(store.customerOrders(request.customerId, before, size + 1), size, query, (row) => [row.createTime, row.id]);
    return { orders: page.rows.map((row) => row.order), nextPageToken: page.nextPageToken };
  };
}
