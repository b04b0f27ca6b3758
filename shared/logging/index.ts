export { createLogger, silentLogger, callLogger, logInTrace, type Logger } from "./logger.js";
