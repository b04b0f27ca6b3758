import { join } from "node:path";
import { consumerConfig, readInt, readMs, readQueryConsumerName, readString, serviceBaseConfig, type ConsumerConfig, type Env, type ServiceBaseConfig } from "../../shared/config/index.js";
import type { WaitLimits } from "./view-changes.js";

/** The query service's configuration, read from the environment once. */
export interface QueryConfig extends ServiceBaseConfig, ConsumerConfig {
  dbFile: string;
  /** Prefix of the durable consumer names; each instance with its own read model needs its own. */
  consumerName: string;
  /** Reads waiting for a minVersion at once (per caller, and in all), and how long one waits at most. */
  maxWaits: WaitLimits;
}

/** Reads the query service's configuration (see the README's environment table). */
export function queryConfig(env: Env): QueryConfig {
  const base = serviceBaseConfig(env, { grpc: ["QUERY_GRPC_PORT", 50053], admin: ["QUERY_ADMIN_PORT", 9053] });
  return {
    ...base,
    dbFile: readString(env, "QUERY_DB_FILE", join(base.dataDir, "query.db")),
    consumerName: readQueryConsumerName(env),
    maxWaits: {
      perCaller: readInt(env, "QUERY_MAX_WAITS_PER_CALLER", 32, 1),
      total: readInt(env, "QUERY_MAX_WAITS", 64, 1),
      longestMs: readMs(env, "QUERY_MAX_WAIT_MS", 30_000, 1),
    },
    ...consumerConfig(env),
  };
}
