export {
  readString,
  readInt,
  readChoice,
  readChoices,
  readAddress,
  readGrpcAddress,
  readHttpUrl,
  readFileOf,
  readNatsUrl,
  isHostPort,
  isGrpcTarget,
  ConfigError,
  type Env,
} from "./env.js";
export { listenable } from "./bind-host.js";
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
