import { OrderlyError, abortReason } from "../../shared/errors/index.js";
import type { CallContext } from "../../shared/grpc/index.js";
import { MAX_TIMER_MS } from "../../shared/config/index.js";
import { CountsByKey } from "../../shared/resilience/index.js";

interface Waiter {
  /** The version awaited, as a number: versions stay far below 2^53, and one above that is never reached anyway. */
  minVersion: number;
  resolve: () => void;
}

/** The views a read may wait for: an order's, a SKU's stock level. */
export type ViewKind = "order" | "stock";

/** How each kind of view names its id in a VERSION_NOT_REACHED: the words, and the metadata key. */
const viewNames: Record<ViewKind, { what: (id: string) => string; key: string }> = {
  order: { what: (id) => `order ${id}`, key: "orderId" },
  stock: { what: (id) => `the stock of SKU ${id}`, key: "sku" },
};

/** How many reads may wait for a version at once (per caller, and in all), and how long one waits at most (ms). */
export interface WaitLimits {
  perCaller: number;
  total: number;
  /** However long the caller's deadline: a direct gRPC caller's may be days, and would hold its place all that time. */
  longestMs: number;
}

/**
 * Tells waiting reads when a view (an order's, a SKU's stock level) reaches a
 * version (read your own writes). In-process: the projector and the query
 * service share it.
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
  /** By view kind and id (`order:ord_1`; ids hold no colon). */
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Reads waiting, per caller, and in all. */
  private readonly waiting = new CountsByKey();
  private total = 0;

  constructor(private readonly limits: WaitLimits = { perCaller: Number.POSITIVE_INFINITY, total: Number.POSITIVE_INFINITY, longestMs: MAX_TIMER_MS }) {}

  /** Records that the `view` of `id` now has `version`, waking reads waiting for it. */
  changed(view: ViewKind, id: string, version: number): void {
    // Every applied event comes here, most with no read waiting at all: no key is made for them.
    if (this.waiters.size === 0) return;
    const key = `${view}:${id}`;
    const set = this.waiters.get(key);
    if (!set) return;
    for (const waiter of set) {
      if (version >= waiter.minVersion) {
        set.delete(waiter);
        waiter.resolve();
      }
    }
    if (set.size === 0) this.waiters.delete(key);
  }

  /**
   * Resolves when the `view` of `id` reaches `minVersion`; rejects with VERSION_NOT_REACHED
   * at `deadline` or after `limits.longestMs`, whichever comes first, or
   * with the abortReason of `signal` when it aborts;
   * TOO_MANY_WAITS at once when `caller`, or everyone, has the most reads
   * waiting.
   */
  waitFor(view: ViewKind, id: string, minVersion: bigint, deadline: number, signal: AbortSignal, caller: string): Promise<void> {
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
    const key = `${view}:${id}`;
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(key) ?? new Set<Waiter>();
      this.waiters.set(key, set);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(key);
        this.total--;
        this.waiting.remove(caller);
      };
      const waiter: Waiter = { minVersion: Number(minVersion), resolve: () => (done(), resolve()) };
      const onAbort = () => (done(), reject(abortReason(signal)));
      const timer = setTimeout(() => {
        done();
        const within = capped ? ` within ${this.limits.longestMs} ms, the longest a read waits` : " yet";
        const names = viewNames[view];
        reject(
          new OrderlyError("VERSION_NOT_REACHED", `${names.what(id)} has not reached version ${minVersion} in the read model${within}`, {
            metadata: { [names.key]: id, minVersion: String(minVersion) },
          }),
        );
      }, Math.min(waitMs, this.limits.longestMs));
      signal.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }
}

/**
 * Reads a view (`read`: undefined while the read model lacks it, or the caller may not see it), first waiting until it
 * has `minVersion` when one is given: the read-your-writes mechanism. The wait gives up at the call's answerBy, so the
 * caller gets this service's VERSION_NOT_REACHED (with the version it waited for) before its own deadline. A view the
 * caller may not see is waited for as a missing one: its versions never end the wait, so neither the answer nor its
 * timing says that it exists or how far it has got.
 */
export async function readAtLeast<T extends { version: number }>(
  changes: ViewChanges,
  view: ViewKind,
  id: string,
  minVersion: bigint,
  context: CallContext,
  read: () => T | undefined,
): Promise<T | undefined> {
  let found = read();
  while (minVersion > 0n && (found === undefined || BigInt(found.version) < minVersion)) {
    await changes.waitFor(view, id, minVersion, context.answerBy, context.signal, context.principal?.subject ?? "");
    found = read();
  }
  return found;
}
