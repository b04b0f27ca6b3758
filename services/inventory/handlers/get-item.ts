import type { GetItemRequest, GetItemResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { OrderlyError } from "../../../shared/errors/index.js";
import type { InventoryStore } from "../store.js";
import { itemMessage } from "../messages.js";

/** GetItem: one item by SKU; ITEM_NOT_FOUND when unknown. */
export function getItem(store: InventoryStore) {
  return (request: GetItemRequest): MessageInitShape<typeof GetItemResponseSchema> => {
    const item = store.getItem(request.sku);
    if (item === undefined) {
      throw new OrderlyError("ITEM_NOT_FOUND", `no item with SKU ${request.sku}`, { metadata: { sku: request.sku } });
    }
    return { item: itemMessage(item) };
  };
}
