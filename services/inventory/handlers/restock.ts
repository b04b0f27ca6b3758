import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RestockRequest, RestockResponseSchema } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { Violations } from "../../../shared/validation/index.js";
import type { InventoryStore } from "../store.js";
import { itemMessage } from "../messages.js";

/** The most units one restock may add. */
export const MAX_RESTOCK_QUANTITY = 1_000_000;

/** Restock: adds stock to a SKU, creating it when new; once per request id. */
export function restock(store: InventoryStore) {
  return (request: RestockRequest, context: CallContext): MessageInitShape<typeof RestockResponseSchema> => {
    const violations = new Violations();
    violations.identifier(request.sku, "sku");
    violations.intRange(request.quantity, 1, MAX_RESTOCK_QUANTITY, "quantity");
    if (request.name !== undefined) {
      violations.check(request.name.length >= 1 && request.name.length <= 200, "name", "must be 1-200 characters");
    }
    if (request.unitPriceMinor !== undefined) {
      violations.check(
        request.unitPriceMinor >= 0n && request.unitPriceMinor <= 1_000_000_000_000n,
        "unit_price_minor",
        "must be between 0 and 1000000000000",
      );
    }
    if (request.currencyCode !== undefined) {
      violations.check(/^[A-Z]{3}$/.test(request.currencyCode), "currency_code", "must be an ISO 4217 code such as USD");
    }
    violations.check(request.requestId.length <= 128, "request_id", "must be at most 128 characters");
    violations.throwIfAny();
    const item = store.restock({
      sku: request.sku,
      quantity: request.quantity,
      name: request.name,
      unitPriceMinor: request.unitPriceMinor === undefined ? undefined : Number(request.unitPriceMinor),
      currencyCode: request.currencyCode,
      requestId: request.requestId || undefined,
    }, { requestId: context.requestId });
    return { item: itemMessage(item) };
  };
}
