import { pino, type DestinationStream, type Logger as PinoLogger } from "pino";
import { activeTraceIds } from "../observability/trace-context.js";

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

/** Adds the active trace's ids to a line, so a line can be found from its trace and the reverse (pino merges into the object, so a new one). */
function traceFields(): object {
  return activeTraceIds() ?? {};
}

/**
 * Creates the logger of one process (JSON lines on stdout, or `destination`);
 * `service` is added to every line, and the trace and span ids of the active
 * span; credentials are redacted.
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
