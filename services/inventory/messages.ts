import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ItemSchema, ReservationSchema } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { ItemRecord, ReservationRecord } from "./store.js";

/** The Item message of a stored item. */
export function itemMessage(item: ItemRecord): MessageInitShape<typeof ItemSchema> {
  return {
    sku: item.sku,
    name: item.name,
    unitPriceMinor: BigInt(item.unitPriceMinor),
    currencyCode: item.currencyCode,
    available: item.available,
    reserved: item.reserved,
    createTime: timestampFromMs(item.createTime),
    updateTime: timestampFromMs(item.updateTime),
    version: BigInt(item.version),
  };
}

/** The Reservation message of a stored reservation. */
export function reservationMessage(reservation: ReservationRecord): MessageInitShape<typeof ReservationSchema> {
  return {
    orderId: reservation.orderId,
    state: reservation.state,
    lines: reservation.lines.map((line) => ({ sku: line.sku, quantity: line.quantity, unitPriceMinor: BigInt(line.unitPriceMinor), itemVersion: BigInt(line.itemVersion ?? 0) })),
    totalMinor: BigInt(reservation.totalMinor),
    currencyCode: reservation.currencyCode,
  };
}
