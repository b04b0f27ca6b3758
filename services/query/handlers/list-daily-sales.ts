import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListDailySalesRequest, ListDailySalesResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import type { ReadStore } from "../read-store.js";

/** ListDailySales: units and revenue per SKU per day, ordered by day then SKU. */
export function listDailySales(store: ReadStore) {
  return (request: ListDailySalesRequest): MessageInitShape<typeof ListDailySalesResponseSchema> => {
    const filter = { sku: request.sku, start: request.startDay || "0000-00-00", end: request.endDay || "9999-99-99" };
    const query = `sales:${filter.sku}:${filter.start}:${filter.end}`;
    const size = pageSize(request.pageSize);
    const cursor = decodePageToken(query, request.pageToken);
    const rows = store.sales(filter, cursor === undefined ? undefined : (cursor.map(String) as [string, string, string]), size + 1);
    const page = pageOf(rows, size, query, (row) => [row.day, row.sku, row.currency_code]);
    return {
      sales: page.rows.map((row) => ({
        sku: row.sku,
        day: row.day,
        units: row.units,
        revenueMinor: row.revenue_minor,
        currencyCode: row.currency_code,
      })),
      nextPageToken: page.nextPageToken,
    };
  };
}
