import type { InventoryService } from "../../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { OrderService } from "../../../proto/gen/orderly/order/v1/order_pb.js";
import type { Client, ServiceHandlers } from "../../../shared/grpc/index.js";
import type { OrderStore } from "../store.js";
import { cancelOrder } from "./cancel-order.js";
import { createOrder, type CreateOrderDeps } from "./create-order.js";
import { getOrder } from "./get-order.js";
import { listOrders } from "./list-orders.js";

/** What the OrderService handlers need. */
export interface OrderHandlerDeps extends CreateOrderDeps {
  store: OrderStore;
  inventory: Client<typeof InventoryService>;
}

/** The OrderService handlers. */
export function orderHandlers(deps: OrderHandlerDeps): ServiceHandlers<typeof OrderService> {
  return {
    createOrder: createOrder(deps),
    getOrder: getOrder(deps.store),
    listOrders: listOrders(deps.store),
    cancelOrder: cancelOrder(deps),
  };
}
