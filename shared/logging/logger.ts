import { pino, type Logger as PinoLogger } from "pino";

/** A structured logger (pino): JSON lines on stdout. */
export type Logger = PinoLogger;

/** Creates the logger of one process; `service` is added to every line. */
export function createLogger(service: string, level: string = "info"): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ["authorization", "*.authorization", "headers.authorization"], censor: "[redacted]" },
  });
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
