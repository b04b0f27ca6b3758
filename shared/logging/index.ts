export { createLogger, silentLogger, logInTrace, type Logger } from "./logger.js";
