import type { Context } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";
import { traceIdsIn } from "../observability/trace-context.js";

/** A structured logger (pino): JSON lines on stdout. */
export type Logger = PinoLogger;

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

/** Where a call's logger keeps its trace (logInTrace). */
const traceContextKey = Symbol("orderly.traceContext");
type TracedLogger = Logger & { [traceContextKey]?: Context };

/** A logger made for one call: a child of `logger` with `bindings`, whose lines logInTrace can put in the call's trace. */
export function callLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  const child = logger.child(bindings) as TracedLogger;
  child[traceContextKey] = undefined; // an own slot, what logInTrace looks for
  return child;
}

/**
 * Makes every line of a call's logger (callLogger) and of its children carry
 * the trace and span ids of `traceContext`'s span. The ids are read when a
 * line is written, so a call that logs nothing pays nothing, where binding
 * them would cost a child logger per call. Throws for any
 * other logger: marking one that other calls share would put their lines in
 * this call's trace.
 */
export function logInTrace(logger: Logger, traceContext: Context): void {
  if (!Object.hasOwn(logger, traceContextKey)) throw new Error("only a call's own logger (callLogger) can be put in a trace");
  (logger as TracedLogger)[traceContextKey] = traceContext;
}

/**
 * Adds the ids of the line's trace (the logger's own, else the active one) to
 * a line, so a line can be found from its trace and the reverse (pino merges
 * into the object, so a new one).
 */
function traceFields(_line: object, _level: number, logger: Logger): object {
  return traceIdsIn((logger as TracedLogger)[traceContextKey]) ?? {};
}

/**
 * Creates the logger of one process (JSON lines on stdout, or `destination`);
 * `service` is added to every line, and the trace and span ids of the line's
 * trace (a call's logger's own, else the active span's); credentials are
 * redacted.
 */
export function createLogger(service: string, level: string = "info", destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: traceFields,
    redact: { paths: redactedPaths, censor: "[redacted]" },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
