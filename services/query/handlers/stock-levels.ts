import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type {
  GetStockLevelRequest,
  GetStockLevelResponseSchema,
  ListStockLevelsRequest,
  ListStockLevelsResponseSchema,
  StockLevelSchema,
} from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { OrderlyError } from "../../../shared/errors/index.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import type { ReadStore, StockLevelRow } from "../read-store.js";
import { readAtLeast } from "../view-changes.js";
import type { ViewReadDeps } from "./get-order.js";

function stockLevelMessage(row: StockLevelRow): MessageInitShape<typeof StockLevelSchema> {
  return {
    sku: row.sku,
    name: row.name,
    available: row.available,
    reserved: row.reserved,
    version: BigInt(row.version),
    updateTime: timestampFromMs(row.update_time),
  };
}

/** GetStockLevel: one SKU's projected stock, first waiting for `minVersion` when given (readAtLeast). */
export function getStockLevel(deps: ViewReadDeps) {
  return async (request: GetStockLevelRequest, context: CallContext): Promise<MessageInitShape<typeof GetStockLevelResponseSchema>> => {
    const row = await readAtLeast(deps.changes, "stock", request.sku, request.minVersion, context, () => deps.store.stockLevel(request.sku));
    if (!row) throw new OrderlyError("ITEM_NOT_FOUND", `no stock level for SKU ${request.sku}`, { metadata: { sku: request.sku } });
    return { stockLevel: stockLevelMessage(row) };
  };
}

/** ListStockLevels: projected stock ordered by SKU. */
export function listStockLevels(store: ReadStore) {
  return (request: ListStockLevelsRequest): MessageInitShape<typeof ListStockLevelsResponseSchema> => {
    const size = pageSize(request.pageSize);
    const cursor = decodePageToken("stock", request.pageToken, ["string"]);
    const page = pageOf(store.stockLevels(cursor?.[0] ?? "", size + 1), size, "stock", (row) => [row.sku]);
    return { stockLevels: page.rows.map(stockLevelMessage), nextPageToken: page.nextPageToken };
  };
}
