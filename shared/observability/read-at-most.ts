/**
 * `read`, called at most once per `intervalMs`: every call in between gets
 * the same answer (for a promise, the same one, so concurrent callers share
 * one request). For what metrics, status reports and probes ask of a
 * database or another process, however many of them ask at once.
 */
export function readAtMost<T>(intervalMs: number, read: () => T, clock: () => number = () => performance.now()): () => T {
  let last: { at: number; value: T } | undefined;
  return () => {
    const now = clock();
    if (last === undefined || now - last.at >= intervalMs) last = { at: now, value: read() };
    return last.value;
  };
}
