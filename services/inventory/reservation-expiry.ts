import { OrderStatus, type OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import type { Client } from "../../shared/grpc/index.js";
import type { Logger } from "../../shared/logging/index.js";
import type { InventoryStore, UnconfirmedReservation } from "./store.js";

/**
 * What became of an order, as the order service (its source of truth) says:
 * confirmed; still pending (the order service settles it: confirms it, or
 * rejects it and its reservation is released then); or ended for good
 * (rejected, cancelled, or unknown to it).
 */
export type OrderFate = "confirmed" | "pending" | "ended";

/**
 * Asks the order service (GetOrder, as the "service" role) what became of
 * an order. An order it does not have (or an id no order can have) ended;
 * any other failure is thrown, so nothing is released on a guess.
 */
export function orderFates(orders: Client<typeof OrderService>, timeoutMs = 2000): (orderId: string) => Promise<OrderFate> {
  return async (orderId) => {
    try {
      const { order } = await orders.getOrder({ id: orderId }, { deadline: Date.now() + timeoutMs, requestId: `expiry:${orderId}` });
      if (order?.status === OrderStatus.CONFIRMED) return "confirmed";
      if (order?.status === OrderStatus.PENDING) return "pending";
      return "ended";
    } catch (error) {
      const reason = OrderlyError.from(error).reason;
      if (reason === "ORDER_NOT_FOUND" || reason === "VALIDATION_FAILED") return "ended";
      throw error;
    }
  };
}

/** How many reservations one sweep looks at, at most. */
const PAGE = 100;

/**
 * Saga recovery on the inventory side: a reservation its order has not
 * been confirmed for within `ttlMs` (as far as the events have told) is
 * released, with its events, once the order service says the order ended
 * without it — so an order that failed for good never holds stock. The
 * order service decides, not the events' arrival: a confirmed order whose
 * OrderConfirmed is late (NATS down longer than the TTL, a consumer behind)
 * keeps its stock, and its reservation is marked confirmed here. Nothing is
 * released while the order service cannot be asked.
 *
 * Sweeps page through the candidates from the oldest, so reservations of
 * pending orders, which stay, do not hide newer ones; a sweep that finds
 * fewer than a page starts from the oldest again next time.
 */
export class ReservationExpiry {
  private readonly timer: NodeJS.Timeout;
  private sweeping: Promise<unknown> = Promise.resolve();
  private after: UnconfirmedReservation | undefined;
  private closed = false;

  constructor(
    private readonly store: InventoryStore,
    private readonly fateOf: (orderId: string) => Promise<OrderFate>,
    private readonly logger: Logger,
    private readonly ttlMs: number,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => {
      // One sweep at a time: a slow order service must not pile sweeps up.
      this.sweeping = this.sweeping
        .then(() => (this.closed ? undefined : this.sweep()))
        .catch((error: unknown) => this.logger.error({ err: error }, "reservation sweep failed"));
    }, intervalMs);
    this.timer.unref();
  }

  /** Looks at one page of expired reservations; returns what it did with them. */
  async sweep(now = Date.now()): Promise<{ released: number; confirmed: number; kept: number }> {
    const done = { released: 0, confirmed: 0, kept: 0 };
    const page = this.store.unconfirmedSince(now - this.ttlMs, PAGE, this.after);
    this.after = page.length === PAGE ? page[PAGE - 1] : undefined;
    for (const { orderId } of page) {
      let fate: OrderFate;
      try {
        fate = await this.fateOf(orderId);
      } catch (error) {
        // Not known now: nothing is released, and the next sweep starts over.
        this.after = undefined;
        this.logger.warn({ err: error, orderId }, "cannot ask the order service about an expired reservation; keeping it");
        break;
      }
      if (this.closed) break;
      if (fate === "confirmed") {
        this.store.markOrderConfirmed(orderId);
        done.confirmed++;
      } else if (fate === "ended") {
        this.store.release(orderId, { requestId: `expiry:${orderId}` });
        done.released++;
      } else {
        done.kept++;
      }
    }
    if (done.released + done.confirmed > 0) this.logger.info(done, "expired reservations settled with the order service");
    return done;
  }

  /** Stops sweeping (after the sweep under way, if any). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.sweeping;
  }
}
