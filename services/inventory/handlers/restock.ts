import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RestockRequest, RestockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { causeOf, type CallContext } from "../../../shared/grpc/index.js";
import type { InventoryStore } from "../store.js";
import { itemMessage } from "../messages.js";

/** Restock: adds stock to a SKU, creating it when new; once per request id. */
export function restock(store: InventoryStore) {
  return (request: RestockRequest, context: CallContext): MessageInitShape<typeof RestockResponseSchema> => {
    const item = store.restock({
      sku: request.sku,
      quantity: request.quantity,
      name: request.name,
      unitPriceMinor: request.unitPriceMinor === undefined ? undefined : Number(request.unitPriceMinor),
      currencyCode: request.currencyCode,
      requestId: request.requestId || undefined,
    }, causeOf(context));
    return { item: itemMessage(item) };
  };
}
