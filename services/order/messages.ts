import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { OrderSchema } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError, isReason } from "../../shared/errors/index.js";
import type { OrderRecord } from "./store.js";

/** The Order message of a stored order. */
export function orderMessage(order: OrderRecord): MessageInitShape<typeof OrderSchema> {
  return {
    id: order.id,
    customerId: order.customerId,
    items: order.items.map((item) => ({
      sku: item.sku,
      quantity: item.quantity,
      unitPriceMinor: BigInt(item.unitPriceMinor),
      lineTotalMinor: BigInt(item.unitPriceMinor * item.quantity),
    })),
    status: order.status,
    totalMinor: BigInt(order.totalMinor),
    currencyCode: order.currencyCode,
    rejectReason: order.rejectReason,
    createTime: timestampFromMs(order.createTime),
    updateTime: timestampFromMs(order.updateTime),
    version: BigInt(order.version),
  };
}

/** How an error names the order it is about (`orderId`, `orderVersion`): `GET /v1/orders/{orderId}?minVersion={orderVersion}` reads it. */
export function orderNamed(order: OrderRecord): { orderId: string; orderVersion: string } {
  return { orderId: order.id, orderVersion: String(order.version) };
}

/** The error a client gets for a REJECTED order, with its id and version (final): the same every time it asks. */
export function rejectionError(order: OrderRecord): OrderlyError {
  const reason = isReason(order.rejectReason) ? order.rejectReason : "INSUFFICIENT_STOCK";
  const detail = order.rejectMetadata.sku ? ` (${order.rejectMetadata.sku})` : "";
  return new OrderlyError(reason, `order ${order.id} was rejected: ${reason.toLowerCase().replaceAll("_", " ")}${detail}`, {
    metadata: { ...order.rejectMetadata, ...orderNamed(order) },
  });
}
