import type { Logger } from "../logging/index.js";

/** A task run every so often (see repeat). */
export interface Repeating {
  /** Whether it has been stopped: a run under way may check it to end early. */
  readonly stopped: boolean;
  /** Stops it; resolves once a run under way has ended. */
  close(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`, never two at once: a tick that finds the
 * previous run still going is skipped, so a slow run does not pile runs up.
 * A run that fails is logged as `what` failed. The timer does not keep the
 * process alive.
 */
export function repeat(intervalMs: number, task: () => Promise<unknown>, logger: Logger, what: string): Repeating {
  let running: Promise<unknown> | undefined;
  const state = {
    stopped: false,
    async close() {
      state.stopped = true;
      clearInterval(timer);
      await running;
    },
  };
  const timer = setInterval(() => {
    if (running !== undefined || state.stopped) return;
    running = task()
      .catch((error: unknown) => logger.error({ err: error }, `${what} failed`))
      .finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return state;
}
