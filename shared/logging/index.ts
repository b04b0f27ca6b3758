export { createLogger, silentLogger, callLogger, logLevels, logsWritten, type LoggedCall, type Logger, type LogLevel } from "./logger.js";
