import type { QueryService } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import type { ServiceHandlers } from "../../../shared/grpc/index.js";
import { getOrder, type ViewReadDeps } from "./get-order.js";
import { getOrderTimeline } from "./get-order-timeline.js";
import { listCustomerOrders } from "./list-customer-orders.js";
import { listDailySales } from "./list-daily-sales.js";
import { getStockLevel, listStockLevels } from "./stock-levels.js";

/** The QueryService handlers over the read models. */
export function queryHandlers(deps: ViewReadDeps): ServiceHandlers<typeof QueryService> {
  return {
    getOrder: getOrder(deps),
    getOrderTimeline: getOrderTimeline(deps),
    listCustomerOrders: listCustomerOrders(deps.store),
    getStockLevel: getStockLevel(deps),
    listStockLevels: listStockLevels(deps.store),
    listDailySales: listDailySales(deps.store),
  };
}
