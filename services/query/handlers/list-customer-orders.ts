import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListCustomerOrdersRequest, ListCustomerOrdersResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { decodePageToken, encodePageToken, pageSize } from "../../../shared/pagination/index.js";
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
    const rows = store.customerOrders(request.customerId, before, size + 1);
    const page = rows.slice(0, size);
    const last = page.at(-1);
    return {
      orders: page.map((row) => row.order),
      nextPageToken: rows.length > size && last ? encodePageToken(query, [last.createTime, last.id]) : "",
    };
  };
}
