import type { Logger } from "../../shared/logging/index.js";
import { isTransient, settleOrder, type SettleDeps } from "./settle-order.js";

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
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: PendingRecoveryOptions) {}

  /** Starts looking every intervalMs. */
  start(): void {
    this.timer = setInterval(() => {
      this.running = this.running.then(async () => void (await this.sweep()));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Resumes what is due now; returns how many orders it settled. */
  async sweep(): Promise<number> {
    const { store, logger } = this.options;
    let settled = 0;
    // Orders accepted awaiting an async reservation are not asked for: they would fill every page.
    for (const order of store.pendingSince(Date.now() - this.options.afterMs, 100)) {
      if (this.stopped) break;
      try {
        const after = await settleOrder(this.options, order, { deadline: Date.now() + this.options.budgetMs, requestId: `recovery:${order.id}` });
        settled++;
        logger.info({ orderId: order.id, status: after.status }, "resumed a pending order");
      } catch (error) {
        logger.warn({ orderId: order.id, err: error }, "could not resume a pending order yet");
        // Inventory down or busy: the next sweep tries again. An error about this order alone must not hold up the rest.
        if (isTransient(error)) break;
      }
    }
    return settled;
  }

  /** Stops; waits for a sweep in progress. */
  async close(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
