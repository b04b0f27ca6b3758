export { createLogger, silentLogger, callLogger, logLevels, type LoggedCall, type Logger, type LogLevel } from "./logger.js";
