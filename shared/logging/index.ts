export { createLogger, silentLogger, callLogger, type LoggedCall, type Logger } from "./logger.js";
