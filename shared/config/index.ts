export { readString, readInt, readChoice, ConfigError, type Env } from "./env.js";
export { serviceBaseConfig, consumerConfig, observabilityConfig, type ServiceBaseConfig, type ConsumerConfig, type ObservabilityConfig } from "./service-config.js";
