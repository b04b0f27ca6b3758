export { createLogger, silentLogger, callLogger, logLevels, urlsForLogs, type LoggedCall, type Logger, type LogLevel } from "./logger.js";
