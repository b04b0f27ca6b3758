import type { Context } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";
import { traceIdsIn } from "../observability/trace-context.js";

/** A structured logger (pino): JSON lines on stdout. */
export type Logger = PinoLogger;

/** Pino's levels (LOG_LEVEL) by name, as the numbers its lines carry. */
export const logLevels = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY } as const;
/** A pino level's name. */
export type LogLevel = keyof typeof logLevels;

/** The log fields that hold server URLs (NATS_URL's): their user info is redacted (urlsForLogs). */
const URL_FIELDS = ["nats", "servers"];

/**
 * Server URLs as a log line may show them: a password (or token) in a URL's
 * user info is redacted, as the fields redactedPaths names are
 * (`nats://query:[redacted]@host:4222`).
 */
export function urlsForLogs(urls: string): string {
  return urls.replace(/:\/\/([^/@,\s]*)@/g, (_match, userInfo: string) => {
    const colon = userInfo.indexOf(":");
    return colon < 0 ? "://[redacted]@" : `://${userInfo.slice(0, colon)}:[redacted]@`;
  });
}

/** Fields never written to a log, wherever they appear (one level deep and in headers/metadata). */
export const redactedPaths = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "headers.cookie",
  "metadata.authorization",
  "token",
  "*.token",
  "accessToken",
  "*.accessToken",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "cookie",
];

/** What a call's logger names on each of its lines: the call, as it is when the line is written. */
export interface LoggedCall {
  readonly method: string;
  readonly requestId: string;
  /** The trace the call belongs to, once it is known (its lines name the active trace until then). */
  readonly traceContext?: Context;
}

/** Where a call's logger keeps its call (callLogger). */
const callKey = Symbol("orderly.call");
type CallLogger = Logger & { [callKey]?: LoggedCall };

/**
 * A logger for one call: it writes where `logger` does, and each of its
 * lines (and its children's) names the call's method, request id and
 * trace, read from `call` when the line is written, so a trace the call
 * gets later is named too.
 *
 * It is `logger` seen through an object of its own, as pino makes its
 * children (Object.create of the parent), with the call in a slot the
 * mixin reads: a pino child would serialize and redact its bindings when
 * made, for every call, most of which log nothing (scripts/bench/HISTORY.md).
 * So `bindings()` does not list the call's fields.
 */
export function callLogger(logger: Logger, call: LoggedCall): Logger {
  const forCall = Object.create(logger) as CallLogger;
  forCall[callKey] = call;
  return forCall;
}

/**
 * The fields a line gets from its logger: for a call's logger (or a child
 * of one) the call's method, request id and trace, the active trace when
 * the call has none yet; for any other, the active trace's ids. pino puts
 * the line's own fields over these.
 */
function callFields(_line: object, _level: number, logger: Logger): object {
  const call = (logger as CallLogger)[callKey];
  if (call === undefined) return traceIdsIn() ?? {};
  const ids = (call.traceContext && traceIdsIn(call.traceContext)) ?? traceIdsIn();
  return { method: call.method, requestId: call.requestId, ...ids };
}

/** Most log output held for a standard output that does not take it (bytes): past it, lines are dropped, not waited for. */
const MAX_HELD_BYTES = 4 * 1024 * 1024;
/** However steadily a slow reader takes what is held, an exit waits for it at most this many times its wait for the next write. */
const MOST_WAITS_AT_EXIT = 5;

/** A process's standard output for log lines, written without blocking (standardOutput). */
interface StandardOutput {
  readonly destination: DestinationStream;
  /**
   * Resolves once what is held is written; or once nothing more was written for `waitMs` (or after
   * MOST_WAITS_AT_EXIT times that in all), dropping what is still held: for a process about to exit.
   */
  written(waitMs: number): Promise<void>;
}

/** Where a process logger keeps its standard output (createLogger without a destination); its children find it through their prototype. */
const outputKey = Symbol("orderly.output");
type OutputLogger = Logger & { [outputKey]?: StandardOutput };

/**
 * Standard output for log lines that never holds the process up while its reader (a supervisor, a log
 * shipper) stops reading its pipe. pino's own (sonic-boom, asynchronous) kept every line the reader had
 * not taken (memory without bound), and at exit wrote them synchronously, retrying for as long as the
 * reader took nothing: a process stopped by SIGTERM then never ended. Here at most MAX_HELD_BYTES wait
 * (past it lines are dropped, and `dropped` is called with their count once the output takes lines
 * again), and a process that exits through runMain gives its reader a bounded time (logsWritten).
 * pino's exit hook still writes what is left when a process exits another way (a script's process.exit).
 *
 * A pipe's writes are made non-blocking here (Node opens process.stdout so), as pino's own did: a write
 * blocked on a worker thread would hold the exit itself. A terminal's are not (Node keeps them blocking,
 * since the shell shares them): a terminal paused with Ctrl-S holds a process writing to it, as it holds
 * any program, until it is resumed.
 */
function standardOutput(dropped: (count: number) => void): StandardOutput {
  const stream = pino.destination({ dest: process.stdout.fd, sync: false, maxLength: MAX_HELD_BYTES });
  let idle = true;
  /** No more writes: the exit's wait gave up, or the reader is gone (EPIPE; pino then makes every write a no-op). */
  let closed = false;
  let droppedSince = 0;
  let exiting: Promise<void> | undefined;
  stream.on("drain", () => (idle = true));
  stream.on("error", (error: NodeJS.ErrnoException) => {
    idle = true;
    if (error.code === "EPIPE") closed = true;
  });
  stream.on("drop", () => droppedSince++);
  stream.on("write", () => {
    if (droppedSince === 0) return;
    setImmediate(() => {
      const count = droppedSince;
      droppedSince = 0;
      dropped(count);
      // The report itself was dropped (the output full again at once): its count waits for the next one.
      if (droppedSince > 0) droppedSince += count;
    });
  });
  const written = (waitMs: number) =>
    new Promise<void>((resolve) => {
      const giveUpAt = Date.now() + MOST_WAITS_AT_EXIT * waitMs;
      let timer: NodeJS.Timeout | undefined;
      const end = () => {
        clearTimeout(timer);
        stream.off("drain", end).off("error", end).off("write", progressed);
        resolve();
      };
      const giveUp = () => {
        end();
        // What is held goes (and pino's exit hook, which would wait on it for good, finds the output closed).
        closed = true;
        stream.destroy();
      };
      const progressed = () => {
        clearTimeout(timer);
        timer = setTimeout(giveUp, Math.max(0, Math.min(waitMs, giveUpAt - Date.now())));
      };
      stream.on("drain", end).on("error", end).on("write", progressed);
      progressed();
    });
  return {
    destination: {
      write(line: string) {
        if (closed) return;
        const drops = droppedSince;
        stream.write(line);
        // A line dropped (past MAX_HELD_BYTES, or longer than that on its own) leaves nothing new to wait for.
        if (droppedSince === drops) idle = false;
      },
    },
    // One wait however many exits ask for it (a fatal error thrown again while the first waits, say).
    written: (waitMs) => (idle || closed ? Promise.resolve() : (exiting ??= written(waitMs))),
  };
}

/**
 * Resolves once the lines `logger` wrote to standard output are written, or once the output took
 * nothing for `waitMs` (at most MOST_WAITS_AT_EXIT times that in all), dropping those still held: for
 * a process about to exit.
 */
export function logsWritten(logger: Logger, waitMs: number): Promise<void> {
  return (logger as OutputLogger)[outputKey]?.written(waitMs) ?? Promise.resolve();
}

/**
 * Creates the logger of one process (JSON lines on stdout, at most MAX_HELD_BYTES held: standardOutput; or `destination`);
 * `service` is added to every line, and the trace and span ids of the line's
 * trace (a call's, else the active span's: callFields); credentials are
 * redacted, in server URLs too.
 */
export function createLogger(service: string, level: string = "info", destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: callFields,
    redact: { paths: redactedPaths, censor: "[redacted]" },
    // Server URLs, which may carry a password: whichever line logs them.
    serializers: Object.fromEntries(URL_FIELDS.map((field) => [field, (value: unknown) => (typeof value === "string" ? urlsForLogs(value) : value)])),
  };
  if (destination) return pino(options, destination);
  const output = standardOutput((dropped) => logger.warn({ dropped }, "log lines dropped: standard output did not take them in time"));
  const logger: OutputLogger = pino(options, output.destination);
  logger[outputKey] = output;
  return logger;
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
