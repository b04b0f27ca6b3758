export { readString, readInt, readChoice, readAddress, readNatsUrl, ConfigError, type Env } from "./env.js";
export {
  serviceBaseConfig,
  consumerConfig,
  natsAuthConfig,
  observabilityConfig,
  readLogLevel,
  readQueryConsumerName,
  readServiceNatsUrl,
  type ServiceBaseConfig,
  type ConsumerConfig,
  type NatsAuth,
  type ObservabilityConfig,
} from "./service-config.js";
