/**
 * How long work a shutdown aborted (its grace over) gets to send its answers
 * and end, before connections are cut and what it uses is closed (ms).
 */
export const ABANDON_MS = 1000;

/** Whether `promise` settles within `ms` (it goes on either way): for shutdowns that wait for work a while, then stop waiting. */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/**
 * A server's drain at shutdown: the work in flight gets `graceMs` to end
 * (`done` settles); then `abort` tells what is left to answer at once, which
 * gets ABANDON_MS more before `cut` ends whatever remains. Resolves when
 * `done` has settled or `cut` has run, with when `abort` ran (epoch ms), or
 * undefined when the grace was enough.
 */
export async function drain(done: Promise<unknown>, graceMs: number, stop: { abort(): void; cut(): void }): Promise<number | undefined> {
  if (await settlesWithin(done, graceMs)) return undefined;
  const abortedAt = Date.now();
  stop.abort();
  if (!(await settlesWithin(done, ABANDON_MS))) stop.cut();
  return abortedAt;
}
