import { join } from "node:path";
import { readChoice, readInt, readString, type Env } from "../../shared/config/index.js";

/** The query service's configuration, read from the environment once. */
export interface QueryConfig {
  host: string;
  port: number;
  dbFile: string;
  logLevel: string;
  synchronous: "NORMAL" | "FULL";
  natsUrl: string;
  /** Prefix of the durable consumer names; each instance with its own read model needs its own. */
  consumerName: string;
  maxDeliveries: number;
  retryDelayMs: number;
  ackWaitMs: number;
  defaultBudgetMs: number;
}

/** Reads the query service's configuration (see the README's environment table). */
export function queryConfig(env: Env): QueryConfig {
  const dataDir = readString(env, "ORDERLY_DATA_DIR", "./.data");
  return {
    host: readString(env, "ORDERLY_BIND_HOST", "127.0.0.1"),
    port: readInt(env, "QUERY_GRPC_PORT", 50053, 0, 65535),
    dbFile: readString(env, "QUERY_DB_FILE", join(dataDir, "query.db")),
    logLevel: readString(env, "LOG_LEVEL", "info"),
    synchronous: readChoice(env, "SQLITE_SYNCHRONOUS", ["NORMAL", "FULL"], "NORMAL"),
    natsUrl: readString(env, "NATS_URL", `nats://127.0.0.1:${readInt(env, "NATS_PORT", 4222, 1, 65535)}`),
    consumerName: readString(env, "QUERY_CONSUMER_NAME", "query"),
    maxDeliveries: readInt(env, "CONSUMER_MAX_DELIVERIES", 5, 1),
    retryDelayMs: readInt(env, "CONSUMER_RETRY_DELAY_MS", 200, 1),
    ackWaitMs: readInt(env, "CONSUMER_ACK_WAIT_MS", 5000, 100),
    defaultBudgetMs: readInt(env, "DEFAULT_DEADLINE_MS", 5000, 1),
  };
}
