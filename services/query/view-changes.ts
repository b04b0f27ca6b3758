import { OrderlyError, abortReason } from "../../shared/errors/index.js";

interface Waiter {
  /** The version awaited, as a number: versions stay far below 2^53, and one above that is never reached anyway. */
  minVersion: number;
  resolve: () => void;
}

/**
 * Tells waiting reads when an order view reaches a version (read your own
 * writes). In-process: the projector and the query service share it.
 */
export class ViewChanges {
  private readonly waiters = new Map<string, Set<Waiter>>();

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
   * Resolves when `id` reaches `minVersion`; rejects with DEADLINE_EXCEEDED
   * at `deadline`, or with the abortReason of `signal` when it aborts.
   */
  waitFor(id: string, minVersion: bigint, deadline: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const set = this.waiters.get(id) ?? new Set<Waiter>();
      this.waiters.set(id, set);
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(id);
      };
      const waiter: Waiter = { minVersion: Number(minVersion), resolve: () => (done(), resolve()) };
      const onAbort = () => (done(), reject(abortReason(signal)));
      const timer = setTimeout(() => {
        done();
        reject(
          new OrderlyError("DEADLINE_EXCEEDED", `order ${id} has not reached version ${minVersion} in the read model yet`, {
            metadata: { orderId: id, minVersion: String(minVersion) },
          }),
        );
      }, Math.max(0, deadline - Date.now()));
      signal.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }
}
