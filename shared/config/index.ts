export { readString, readInt, readChoice, ConfigError, type Env } from "./env.js";
export { serviceBaseConfig, consumerConfig, type ServiceBaseConfig, type ConsumerConfig } from "./service-config.js";
