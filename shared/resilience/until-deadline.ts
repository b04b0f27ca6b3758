import { OrderlyError, abortReason } from "../errors/index.js";

/**
 * What `promise` settles to, unless `deadline` (epoch ms) passes first —
 * then DEADLINE_EXCEEDED, saying it was `waitingFor` — or `signal` aborts
 * first (its abortReason: CANCELLED unless the signal says why). The work
 * behind `promise` goes on; its outcome is then dropped.
 */
export function untilDeadline<T>(promise: Promise<T>, deadline: number | undefined, waitingFor: string, signal?: AbortSignal): Promise<T> {
  if (deadline === undefined && signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => settle(() => reject(abortReason(signal!)));
    const timer =
      deadline === undefined
        ? undefined
        : setTimeout(() => settle(() => reject(new OrderlyError("DEADLINE_EXCEEDED", `the deadline passed waiting for ${waitingFor}`))), deadline - Date.now());
    const settle = (how: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      how();
    };
    promise.then(
      (value) => settle(() => resolve(value)),
      (error: unknown) => settle(() => reject(error)),
    );
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}
