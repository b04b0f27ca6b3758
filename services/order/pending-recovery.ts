import { ROOT_CONTEXT } from "@opentelemetry/api";
import type { Logger } from "../../shared/logging/index.js";
import { isTransient } from "../../shared/errors/index.js";
import { repeat, type Repeating } from "../../shared/process/index.js";
import { keysetPages } from "../../shared/sqlite/index.js";
import { settleOrder, type SettleDeps } from "./settle-order.js";
import { Status, type OrderRecord } from "./store.js";

/** How many PENDING orders a sweep reads at a time. */
const PAGE = 100;

/** How the recovery loop runs. */
export interface PendingRecoveryOptions extends SettleDeps {
  logger: Logger;
  /** A PENDING order untouched this long (ms) is resumed. */
  afterMs: number;
  /**
   * An order accepted awaiting an async reservation (202) and still PENDING this long (ms) is resumed too
   * (default ANNOUNCED_AFTER_MS, never less than afterMs): the events settle it, unless its outcome was lost.
   */
  announcedAfterMs?: number;
  /** How often to look (ms). */
  intervalMs: number;
  /** Deadline of each resumed reservation (ms). */
  budgetMs: number;
}

/** How long an order accepted awaiting an async reservation is left to the events before the sweep resumes it (ms). */
export const ANNOUNCED_AFTER_MS = 5 * 60_000;

/**
 * Saga recovery: resumes PENDING orders whose CreateOrder was interrupted
 * (a crash, a timeout, the inventory down with fail-fast) by reserving
 * again — idempotent per order id — and confirming or rejecting them, or
 * handing them to the async path when degrading. Orders already accepted
 * awaiting an async reservation are left to the events for
 * `announcedAfterMs`, then resumed the same way: their outcome event may
 * never be applied (dead-lettered after its handler failed again and again,
 * or of a reason this code does not know), and nothing else would settle
 * them. Whichever of the sweep and a late outcome comes second changes
 * nothing: ReserveStock answers the reservation it made, and a decision is
 * only taken for a PENDING order.
 */
export class PendingRecovery {
  private repeating: Repeating | undefined;

  constructor(private readonly options: PendingRecoveryOptions) {}

  /** Starts looking every intervalMs (a tick that finds a sweep still going is skipped). */
  start(): void {
    this.repeating ??= repeat(this.options.intervalMs, () => this.sweep(), this.options.logger, "pending-order sweep");
  }

  /**
   * Resumes what is due now, a page at a time from the oldest; returns how
   * many orders it settled. An order that fails for a reason of its own is
   * passed over (the pages go on past it); the inventory down ends the sweep.
   */
  async sweep(): Promise<number> {
    const { store, logger } = this.options;
    const now = Date.now();
    const before = now - this.options.afterMs;
    const announcedBefore = now - Math.max(this.options.afterMs, this.options.announcedAfterMs ?? ANNOUNCED_AFTER_MS);
    let settled = 0;
    const due = function* () {
      yield* keysetPages((after: OrderRecord | undefined) => store.pendingSince(before, PAGE, after), PAGE);
      yield* keysetPages((after: OrderRecord | undefined) => store.pendingSince(announcedBefore, PAGE, after, true), PAGE);
    };
    for (const order of due()) {
      if (this.repeating?.stopped) break;
      try {
        // Outside any call: no trace to join.
        const options = { deadline: Date.now() + this.options.budgetMs, requestId: `recovery:${order.id}`, traceContext: ROOT_CONTEXT };
        const settledOrder = await settleOrder(this.options, order, options, logger);
        // Gone: a retry of its request found a SKU unknown and discarded it meanwhile.
        if (settledOrder === undefined) continue;
        // Accepted already and still PENDING: the inventory did not answer (degrading, that is no error). As for an error
        // that may pass, the sweep ends here.
        if (order.announced && settledOrder.status === Status.PENDING) break;
        settled++;
        logger.info({ orderId: order.id, status: settledOrder.status }, "resumed a pending order");
      } catch (error) {
        logger.warn({ orderId: order.id, err: error }, "could not resume a pending order yet");
        if (isTransient(error)) break;
      }
    }
    return settled;
  }

  /** Stops; waits for a sweep in progress. */
  async close(): Promise<void> {
    await this.repeating?.close();
  }
}
