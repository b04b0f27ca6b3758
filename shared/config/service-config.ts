import { logLevels, type LogLevel } from "../logging/index.js";
import { securityConfig, type SecurityConfig } from "../security/config.js";
import { ConfigError, readChoice, readFileOf, readHttpUrl, readInt, readMs, readNatsUrl, readString, type Env } from "./env.js";

/** How a process logs and traces. */
export interface ObservabilityConfig {
  logLevel: LogLevel;
  /** OTLP/HTTP endpoint spans are exported to; undefined: trace ids only, nothing exported. */
  otlpEndpoint: string | undefined;
  /** Longest time a finished span waits before export (ms). */
  spanExportDelayMs: number;
  /** Host names the admin port answers besides IP addresses, localhost and this machine's name (ORDERLY_ADMIN_HOSTS). */
  adminHosts: readonly string[];
}

/** Reads LOG_LEVEL: one of pino's levels, info by default. */
export function readLogLevel(env: Env): LogLevel {
  return readChoice(env, "LOG_LEVEL", Object.keys(logLevels) as LogLevel[], "info");
}

/** Reads NATS_URL, by default the local server on NATS_PORT. */
export function readServiceNatsUrl(env: Env): string {
  return readNatsUrl(env, `nats://127.0.0.1:${readInt(env, "NATS_PORT", 4222, 1, 65535)}`);
}

/**
 * What a query consumer name may be: the durable consumers are named after it
 * (`<name>-orders`, `<name>-rebuild-inventory`), and NATS refuses a durable
 * name with `.`, `*`, `>`, whitespace or a path separator. 64 keeps the
 * longest (82 characters) far below nats-server's 255.
 */
const QUERY_CONSUMER_NAME_FORM = /^[A-Za-z0-9_-]{1,64}$/;

/** Reads QUERY_CONSUMER_NAME: what the query service's durable consumers are named after ("query" by default). */
export function readQueryConsumerName(env: Env): string {
  const name = readString(env, "QUERY_CONSUMER_NAME", "query");
  if (!QUERY_CONSUMER_NAME_FORM.test(name)) {
    throw new ConfigError(
      `QUERY_CONSUMER_NAME must be 1 to 64 letters, digits, "-" or "_" (the query's durable consumers are named after it, and NATS refuses a durable name with ".", "*", ">", a space or a slash), got "${name}"`,
    );
  }
  // `<name>-rebuild-<stream>` is what `npm run rebuild` of the name without the suffix reads with (and deletes).
  if (name.endsWith("-rebuild")) {
    throw new ConfigError(`QUERY_CONSUMER_NAME must not end in "-rebuild" (its consumers would be those npm run rebuild makes and deletes for "${name.slice(0, -"-rebuild".length)}"), got "${name}"`);
  }
  return name;
}

/** Reads LOG_LEVEL, the OpenTelemetry settings (the standard OTEL_* names) and ORDERLY_ADMIN_HOSTS. */
export function observabilityConfig(env: Env): ObservabilityConfig {
  return {
    logLevel: readLogLevel(env),
    otlpEndpoint: readHttpUrl(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    spanExportDelayMs: readMs(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1),
    adminHosts: readString(env, "ORDERLY_ADMIN_HOSTS", "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ""),
  };
}

/** What every Orderly service reads the same way. */
export interface ServiceBaseConfig extends ObservabilityConfig {
  host: string;
  port: number;
  /** Port of the admin HTTP server (/metrics, /healthz, /status.json); 0 picks a free one. */
  adminPort: number;
  /** The variables that set the two ports (for a message when one cannot be listened on). */
  portSettings: { grpc: string; admin: string };
  dataDir: string;
  synchronous: "NORMAL" | "FULL";
  natsUrl: string;
  /** NATS credentials (user and password), when the server requires them. */
  natsAuth: NatsAuth | undefined;
  /** Link key, token verification, mTLS. */
  security: SecurityConfig;
  /** The budget of a call that comes without a deadline (ms). */
  defaultBudgetMs: number;
  /** Most events each event stream holds (STREAM_MAX_EVENTS): a stream's when this service makes it, raised at start on the one it publishes to. */
  streamMaxEvents: number;
  /** Copies of each event stream a JetStream cluster keeps (STREAM_REPLICAS): a stream's when this service makes it, added at start to the one it publishes to. */
  streamReplicas: number;
}

/** A NATS user and its password. */
export interface NatsAuth {
  user: string;
  pass: string;
}

/** Reads NATS_USER with NATS_PASSWORD or NATS_PASSWORD_FILE (the password never in the repo). */
export function natsAuthConfig(env: Env): NatsAuth | undefined {
  const user = readString(env, "NATS_USER", "");
  if (user === "") return undefined;
  const file = readString(env, "NATS_PASSWORD_FILE", "");
  const pass = file === "" ? readString(env, "NATS_PASSWORD", "") : readFileOf("NATS_PASSWORD_FILE", file).trim();
  return { user, pass };
}

/** Reads the settings every service shares; the variables named set its gRPC and admin ports. */
export function serviceBaseConfig(
  env: Env,
  ports: { grpc: readonly [variable: string, fallback: number]; admin: readonly [variable: string, fallback: number] },
): ServiceBaseConfig {
  const dataDir = readString(env, "ORDERLY_DATA_DIR", "./.data");
  return {
    ...observabilityConfig(env),
    host: readString(env, "ORDERLY_BIND_HOST", "127.0.0.1"),
    port: readInt(env, ports.grpc[0], ports.grpc[1], 0, 65535),
    adminPort: readInt(env, ports.admin[0], ports.admin[1], 0, 65535),
    portSettings: { grpc: ports.grpc[0], admin: ports.admin[0] },
    dataDir,
    synchronous: readChoice(env, "SQLITE_SYNCHRONOUS", ["NORMAL", "FULL"], "NORMAL"),
    natsUrl: readServiceNatsUrl(env),
    natsAuth: natsAuthConfig(env),
    security: securityConfig(env, dataDir, { requireJwt: false }),
    defaultBudgetMs: readMs(env, "DEFAULT_DEADLINE_MS", 5000, 1),
    streamMaxEvents: readInt(env, "STREAM_MAX_EVENTS", 2_000_000, 10),
    // JetStream keeps at most 5 copies of a stream.
    streamReplicas: readInt(env, "STREAM_REPLICAS", 1, 1, 5),
  };
}

/** How a service's event consumers retry, dead-letter and wait for acks. */
export interface ConsumerConfig {
  maxDeliveries: number;
  retryDelayMs: number;
  ackWaitMs: number;
}

/** Reads the consumer settings (CONSUMER_*). */
export function consumerConfig(env: Env): ConsumerConfig {
  return {
    maxDeliveries: readInt(env, "CONSUMER_MAX_DELIVERIES", 5, 1),
    retryDelayMs: readInt(env, "CONSUMER_RETRY_DELAY_MS", 200, 1),
    ackWaitMs: readMs(env, "CONSUMER_ACK_WAIT_MS", 5000, 100),
  };
}
