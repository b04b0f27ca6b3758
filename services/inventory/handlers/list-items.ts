import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListItemsRequest, ListItemsResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { decodePageToken, encodePageToken, pageSize } from "../../../shared/pagination/index.js";
import type { InventoryStore } from "../store.js";
import { itemMessage } from "../messages.js";

const QUERY = "items";

/** ListItems: items ordered by SKU, a page at a time. */
export function listItems(store: InventoryStore) {
  return (request: ListItemsRequest): MessageInitShape<typeof ListItemsResponseSchema> => {
    const size = pageSize(request.pageSize);
    const cursor = decodePageToken(QUERY, request.pageToken);
    const afterSku = cursor === undefined ? "" : String(cursor[0]);
    const rows = store.listItems(afterSku, size + 1);
    const page = rows.slice(0, size);
    const last = page.at(-1);
    return {
      items: page.map(itemMessage),
      nextPageToken: rows.length > size && last ? encodePageToken(QUERY, [last.sku]) : "",
    };
  };
}
