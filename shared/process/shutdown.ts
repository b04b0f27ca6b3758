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
