import type { Logger } from "../../shared/logging/index.js";
import type { InventoryStore } from "./store.js";

/**
 * Saga recovery on the inventory side: a reservation whose order was never
 * confirmed within `ttlMs` is released (with its events), so an order that
 * failed for good never holds stock. The order service treats a released
 * reservation of a PENDING order as a rejection, so nothing is confirmed
 * without its stock.
 */
export class ReservationExpiry {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: InventoryStore,
    private readonly logger: Logger,
    private readonly ttlMs: number,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => this.sweep(), intervalMs);
    this.timer.unref();
  }

  /** Releases what has expired now; returns how many. */
  sweep(now = Date.now()): number {
    const expired = this.store.unconfirmedSince(now - this.ttlMs, 500);
    for (const orderId of expired) this.store.release(orderId, { requestId: `expiry:${orderId}` });
    if (expired.length > 0) this.logger.info({ released: expired.length }, "released reservations of orders never confirmed");
    return expired.length;
  }

  /** Stops sweeping. */
  close(): void {
    clearInterval(this.timer);
  }
}
