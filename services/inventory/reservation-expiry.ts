import { OrderStatus, type OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { OrderlyError, isTransient } from "../../shared/errors/index.js";
import type { CallOptions, Client } from "../../shared/grpc/index.js";
import type { Logger } from "../../shared/logging/index.js";
import { repeat, type Repeating } from "../../shared/process/index.js";
import { keysetPages } from "../../shared/sqlite/index.js";
import type { InventoryStore, UnconfirmedReservation } from "./store.js";

/**
 * What became of an order, as the order service (its source of truth) says:
 * confirmed; still pending (the order service settles it: confirms it, or
 * rejects it and its reservation is released then); or ended for good
 * (rejected, cancelled, or unknown to it).
 */
export type OrderFate = "confirmed" | "pending" | "ended";

/** Asks what became of an order; within the call that asks, when one does (its deadline, cancel, request id and trace). */
export type FateOf = (orderId: string, call?: Pick<CallOptions, "deadline" | "signal" | "requestId" | "traceContext">) => Promise<OrderFate>;

/**
 * Asks the order service (GetOrder, as the "service" role) what became of
 * an order. An order it does not have (or an id no order can have) ended;
 * any other failure is thrown, so nothing is released on a guess.
 */
export function orderFates(orders: Client<typeof OrderService>, timeoutMs = 2000): FateOf {
  return async (orderId, call = {}) => {
    try {
      const deadline = Math.min(Date.now() + timeoutMs, call.deadline ?? Number.POSITIVE_INFINITY);
      const { order } = await orders.getOrder({ id: orderId }, { requestId: `expiry:${orderId}`, ...call, deadline });
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

/** How many reservations a sweep reads at a time. */
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
 * A sweep goes through every expired reservation, a page at a time from the
 * oldest (reservations of pending orders stay, and must not hide newer
 * ones); an order the order service cannot answer for by itself is skipped,
 * and the order service being unreachable ends the sweep. A tick that finds
 * a sweep still going is skipped.
 */
export class ReservationExpiry {
  private readonly repeating: Repeating;

  constructor(
    private readonly store: InventoryStore,
    private readonly fateOf: FateOf,
    private readonly logger: Logger,
    private readonly ttlMs: number,
    intervalMs: number,
  ) {
    this.repeating = repeat(intervalMs, () => this.sweep(), logger, "reservation sweep");
  }

  /** Settles what has expired now with the order service; returns what it did. */
  async sweep(now = Date.now()): Promise<{ released: number; confirmed: number; kept: number }> {
    const done = { released: 0, confirmed: 0, kept: 0 };
    const expired = keysetPages((after: UnconfirmedReservation | undefined) => this.store.unconfirmedSince(now - this.ttlMs, PAGE, after), PAGE);
    for (const { orderId } of expired) {
      if (this.repeating.stopped) break;
      let fate: OrderFate;
      try {
        fate = await this.fateOf(orderId);
      } catch (error) {
        this.logger.warn({ err: error, orderId }, "cannot ask the order service about an expired reservation; keeping it");
        // The order service down or busy: the next sweep tries again. An error about this order alone skips it.
        if (isTransient(error)) break;
        done.kept++;
        continue;
      }
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
  close(): Promise<void> {
    return this.repeating.close();
  }
}
