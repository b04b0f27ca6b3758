import { ConfigError, type Env } from "../config/index.js";
import { logsWritten, type Logger } from "../logging/index.js";

/** How long an exit waits for the process's next log line to be written (ms): a reader that takes none for that long loses the rest (see logsWritten). */
const EXIT_LOGS_MS = 1000;

/** Ends the process with `code` once its log lines are written (bounded: EXIT_LOGS_MS). */
function exitAfterLogs(logger: Logger, code: number): void {
  void logsWritten(logger, EXIT_LOGS_MS).then(() => process.exit(code));
}

/** Something a process started and must stop on shutdown. */
export interface Stoppable {
  /** Stops accepting work, finishes or abandons what is in flight, and releases resources. */
  close(): Promise<void>;
}

/**
 * Runs a process's `start`, and on SIGTERM or SIGINT closes what it returned: once it has started, when the signal
 * comes during the start (the default action would kill the process half-started). A second signal, or a close that
 * takes longer than `graceMs` (the start's rest included), ends the process at once (once its last lines are logged:
 * exitAfterLogs). With configOrExit, the only place that calls process.exit.
 */
export function runMain(
  logger: Logger,
  /** Starts the process; `fatal` ends it later, as a failure of `start` would (a refusal it meets once running). */
  start: (fatal: (error: unknown) => void) => Promise<Stoppable>,
  graceMs = 10_000,
): void {
  let stopping = false;
  const fail = (error: unknown) => {
    // A setting, or what it names, this process cannot use (a port taken, say): the message says what to change; a stack would not.
    if (error instanceof ConfigError) logger.fatal(error.message);
    else logger.fatal({ err: error }, "fatal error");
    exitAfterLogs(logger, 1);
  };
  process.on("uncaughtException", fail);
  process.on("unhandledRejection", fail);
  const started = start(fail);
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      exitAfterLogs(logger, 1);
      return;
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      logger.error({ graceMs }, "shutdown took too long: exiting");
      exitAfterLogs(logger, 1);
    }, graceMs);
    timer.unref();
    started.then(
      (running) =>
        running.close().then(() => {
          // Stopped in time: the exit's wait for the log's reader is no overrun of the grace.
          clearTimeout(timer);
          logger.info("stopped");
          exitAfterLogs(logger, 0);
        }, fail),
      // A start that failed ends the process by itself (fail, below).
      () => undefined,
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  started.catch(fail);
}

/**
 * A process's configuration, read from its environment (and checked, when
 * `read` is async) before anything starts. A bad value ends the process with
 * one line that names it (exit code 2, as `npm start`'s own settings do), not
 * a stack trace.
 */
export async function configOrExit<T>(name: string, read: (env: Env) => T | Promise<T>): Promise<T> {
  try {
    return await read(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(2);
  }
}
