import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListCustomerOrdersRequest, ListCustomerOrdersResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import { Violations } from "../../../shared/validation/index.js";
import type { ReadStore } from "../read-store.js";

/** ListCustomerOrders: a customer's orders from the read model, newest first. */
export function listCustomerOrders(store: ReadStore) {
  return (request: ListCustomerOrdersRequest): MessageInitShape<typeof ListCustomerOrdersResponseSchema> => {
    const violations = new Violations();
    violations.identifier(request.customerId, "customer_id");
    violations.throwIfAny();
    const size = pageSize(request.pageSize);
    const query = `orders:${request.customerId}`;
    const cursor = decodePageToken(query, request.pageToken);
    const before = cursor === undefined ? undefined : { createTime: Number(cursor[0]), id: String(cursor[1]) };
    const page = pageOf(store.customerOrders(request.customerId, before, size + 1), size, query, (row) => [row.createTime, row.id]);
    return { orders: page.rows.map((row) => row.order), nextPageToken: page.nextPageToken };
  };
}
