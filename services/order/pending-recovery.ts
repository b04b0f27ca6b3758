import { ROOT_CONTEXT } from "@opentelemetry/api";
import type { Logger } from "../../shared/logging/index.js";
import { isTransient } from "../../shared/errors/index.js";
import { repeat, type Repeating } from "../../shared/process/index.js";
import { keysetPages } from "../../shared/sqlite/index.js";
import { settleOrder, type SettleDeps } from "./settle-order.js";
import type { OrderRecord } from "./store.js";

/** How many PENDING orders a sweep reads at a time. */
const PAGE = 100;

/** How the recovery loop runs. */
export interface PendingRecoveryOptions extends SettleDeps {
  logger: Logger;
  /** A PENDING order untouched this long (ms) is resumed. */
  afterMs: number;
  /** How often to look (ms). */
  intervalMs: number;
  /** Deadline of each resumed reservation (ms). */
  budgetMs: number;
}

/**
 * Saga recovery: resumes PENDING orders whose CreateOrder was interrupted
 * (a crash, a timeout, the inventory down with fail-fast) by reserving
 * again — idempotent per order id — and confirming or rejecting them, or
 * handing them to the async path when degrading. Orders already accepted
 * awaiting an async reservation are left to the events.
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
    const before = Date.now() - this.options.afterMs;
    let settled = 0;
    // Orders accepted awaiting an async reservation are not asked for: the events settle them.
    for (const order of keysetPages((after: OrderRecord | undefined) => store.pendingSince(before, PAGE, after), PAGE)) {
      if (this.repeating?.stopped) break;
      try {
        // Outside any call: no trace to join.
        const options = { deadline: Date.now() + this.options.budgetMs, requestId: `recovery:${order.id}`, traceContext: ROOT_CONTEXT };
        const settledOrder = await settleOrder(this.options, order, options, logger);
        // Gone: a retry of its request found a SKU unknown and discarded it meanwhile.
        if (settledOrder === undefined) continue;
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
