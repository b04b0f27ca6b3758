import { format } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../logging/index.js";

const REPORTED_BY_US = "No address added out of total";

/**
 * Makes grpc-js's own lines (its errors, and with GRPC_VERBOSITY and
 * GRPC_TRACE its info and traces) lines of the process's log, with
 * `component: "grpc-js"`, rather than text on standard error that a JSON
 * log reader cannot parse. Its levels map to the logger's, which filters
 * them by LOG_LEVEL as well: traces come at debug.
 */
export function logGrpcLibraryTo(logger: Logger): void {
  const at = (level: "error" | "info" | "debug") => (message?: unknown, ...rest: unknown[]) => {
    const line = format(message, ...rest);
    // A port it could not bind: startGrpcServer ends the process with a line naming the setting (listenRefusal).
    if (!line.startsWith(REPORTED_BY_US)) logger[level]({ component: "grpc-js" }, line);
  };
  grpc.setLogger({ error: at("error"), info: at("info"), debug: at("debug") });
}
