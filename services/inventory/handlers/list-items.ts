import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListItemsRequest, ListItemsResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import type { InventoryStore } from "../store.js";
import { itemMessage } from "../messages.js";

const QUERY = "items";

/** ListItems: items ordered by SKU, a page at a time. */
export function listItems(store: InventoryStore) {
  return (request: ListItemsRequest): MessageInitShape<typeof ListItemsResponseSchema> => {
    const size = pageSize(request.pageSize);
    const cursor = decodePageToken(QUERY, request.pageToken, ["string"]);
    const afterSku = cursor?.[0] ?? "";
    const page = pageOf(store.listItems(afterSku, size + 1), size, QUERY, (item) => [item.sku]);
    return { items: page.rows.map(itemMessage), nextPageToken: page.nextPageToken };
  };
}
