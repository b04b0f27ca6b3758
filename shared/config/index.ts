export { readString, readInt, readChoice, ConfigError, type Env } from "./env.js";
