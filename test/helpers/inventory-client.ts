import { create } from "@bufbuild/protobuf";
import { ReservationSchema, type InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { Client } from "../../shared/grpc/index.js";
import { reservationMessage } from "../../services/inventory/messages.js";
import type { InventoryStore } from "../../services/inventory/store.js";

/** One call of the order service to the inventory, as `via` sees it. */
export type InventoryCall = { method: "reserve" | "release"; orderId: string; signal?: AbortSignal };

/**
 * The order service's inventory client answered by a real `InventoryStore` in
 * this process: each call's answer is what the inventory's handler would send.
 * `via` stands for the network: it gets the call and a function that runs it
 * at the inventory, and decides when (and whether) the caller hears back.
 */
export function inventoryClientOver(
  store: InventoryStore,
  via: <T>(call: InventoryCall, run: () => T) => Promise<T> = async (_call, run) => run(),
): Client<typeof InventoryService> {
  const answer = (reservation: Parameters<typeof reservationMessage>[0]) => ({ reservation: create(ReservationSchema, reservationMessage(reservation)) });
  return {
    reserveStock: (req: { orderId: string; lines: { sku: string; quantity: number }[] }, options?: { signal?: AbortSignal }) =>
      via({ method: "reserve", orderId: req.orderId, signal: options?.signal }, () =>
        answer(store.reserve(req.orderId, req.lines.map(({ sku, quantity }) => ({ sku, quantity })))),
      ),
    releaseStock: (req: { orderId: string }, options?: { signal?: AbortSignal }) =>
      via({ method: "release", orderId: req.orderId, signal: options?.signal }, () => answer(store.release(req.orderId))),
  } as unknown as Client<typeof InventoryService>;
}
