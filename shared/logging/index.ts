export { createLogger, silentLogger, redactedPaths, type Logger } from "./logger.js";
