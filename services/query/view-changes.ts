import { OrderlyError, abortReason } from "../../shared/errors/index.js";
import { MAX_TIMER_MS } from "../../shared/config/index.js";
import { CountsByKey } from "../../shared/resilience/index.js";

interface Waiter {
  /** The version awaited, as a number: versions stay far below 2^53, and one above that is never reached anyway. */
  minVersion: number;
  resolve: () => void;
}

/** How many reads may wait for a version at once (per caller, and in all), and how long one waits at most (ms). */
export interface WaitLimits {
  perCaller: number;
  total: number;
  /** However long the caller's deadline: a direct gRPC caller's may be days, and would hold its place all that time. */
  longestMs: number;
}

/**
 * Tells waiting reads when an order view reaches a version (read your own
 * writes). In-process: the projector and the query service share it.
 *
 * Each caller may have `limits.perCaller` reads waiting at once, and all
 * callers together `limits.total`; more are refused at once
 * (TOO_MANY_WAITS). A wait holds its call, and the gateway's calls to this
 * service share one bulkhead: without the bounds, one customer waiting for
 * versions that never come (ids unknown, or another customer's) filled it
 * within its rate limit, and every caller's order, list and stock reads were
 * refused until those waits timed out. With them, reads that do not wait
 * keep most of it.
 */
export class ViewChanges {
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Reads waiting, per caller, and in all. */
  private readonly waiting = new CountsByKey();
  private total = 0;

  constructor(private readonly limits: WaitLimits = { perCaller: Number.POSITIVE_INFINITY, total: Number.POSITIVE_INFINITY, longestMs: MAX_TIMER_MS }) {}

  /** Records that `id` now has `version`, waking reads waiting for it. */
  changed(id: string, version: number): void {
    const set = this.waiters.get(id);
    if (!set) return;
    for (const waiter of set) {
      if (version >= waiter.minVersion) {
        set.delete(waiter);
        waiter.resolve();
      }
    }
    if (set.size === 0) this.waiters.delete(id);
  }

  /**
   * Resolves when `id` reaches `minVersion`; rejects with VERSION_NOT_REACHED
   * at `deadline` or after `limits.longestMs`, whichever comes first, or
   * with the abortReason of `signal` when it aborts;
   * TOO_MANY_WAITS at once when `caller`, or everyone, has the most reads
   * waiting.
   */
  waitFor(id: string, minVersion: bigint, deadline: number, signal: AbortSignal, caller: string): Promise<void> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const callerFull = this.waiting.of(caller) >= this.limits.perCaller;
    if (callerFull || this.total >= this.limits.total) {
      const [whose, limit] = callerFull ? ["the caller has", this.limits.perCaller] : ["callers have", this.limits.total];
      return Promise.reject(
        new OrderlyError("TOO_MANY_WAITS", `${whose} ${limit} reads waiting for versions already; retry when one has ended`, {
          metadata: { limit: String(limit), retryAfterSeconds: "1" },
        }),
      );
    }
    this.waiting.add(caller);
    this.total++;
    const waitMs = Math.max(0, deadline - Date.now());
    const capped = waitMs > this.limits.longestMs;
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(id) ?? new Set<Waiter>();
      this.waiters.set(id, set);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(id);
        this.total--;
        this.waiting.remove(caller);
      };
      const waiter: Waiter = { minVersion: Number(minVersion), resolve: () => (done(), resolve()) };
      const onAbort = () => (done(), reject(abortReason(signal)));
      const timer = setTimeout(() => {
        done();
        const within = capped ? ` within ${this.limits.longestMs} ms, the longest a read waits` : " yet";
        reject(
          new OrderlyError("VERSION_NOT_REACHED", `order ${id} has not reached version ${minVersion} in the read model${within}`, {
            metadata: { orderId: id, minVersion: String(minVersion) },
          }),
        );
      }, Math.min(waitMs, this.limits.longestMs));
      signal.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }
}
