export { readString, readInt, readChoice, ConfigError, type Env } from "./env.js";
export { serviceBaseConfig, consumerConfig, natsAuthConfig, type ServiceBaseConfig, type ConsumerConfig, type NatsAuth } from "./service-config.js";
