import { InventoryService } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { ServiceHandlers } from "../../../shared/grpc/index.js";
import type { FateOf } from "../reservation-expiry.js";
import type { InventoryStore } from "../store.js";
import { getItem } from "./get-item.js";
import { listItems } from "./list-items.js";
import { releaseStock } from "./release-stock.js";
import { reserveStock } from "./reserve-stock.js";
import { restock } from "./restock.js";

/** The InventoryService handlers over a store; `fateOf` asks the order service what became of an order. */
export function inventoryHandlers(store: InventoryStore, fateOf: FateOf): ServiceHandlers<typeof InventoryService> {
  return {
    getItem: getItem(store),
    listItems: listItems(store),
    restock: restock(store),
    reserveStock: reserveStock(store),
    releaseStock: releaseStock(store, fateOf),
  };
}
