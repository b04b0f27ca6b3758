import { join } from "node:path";
import { readChoice, readInt, readString, type Env } from "../../shared/config/index.js";

/** The inventory service's configuration, read from the environment once. */
export interface InventoryConfig {
  host: string;
  port: number;
  dbFile: string;
  logLevel: string;
  synchronous: "NORMAL" | "FULL";
  natsUrl: string;
  reservationTtlMs: number;
  reservationSweepMs: number;
  /** Fault injection for tests and drills: delay these RPCs (all when empty) by this many ms. */
  faultDelay: { ms: number; methods: string[] };
  maxDeliveries: number;
  retryDelayMs: number;
  ackWaitMs: number;
}

/** Reads the inventory service's configuration (see the README's environment table). */
export function inventoryConfig(env: Env): InventoryConfig {
  const dataDir = readString(env, "ORDERLY_DATA_DIR", "./.data");
  return {
    host: readString(env, "ORDERLY_BIND_HOST", "127.0.0.1"),
    port: readInt(env, "INVENTORY_GRPC_PORT", 50052, 0, 65535),
    dbFile: join(dataDir, "inventory.db"),
    logLevel: readString(env, "LOG_LEVEL", "info"),
    synchronous: readChoice(env, "SQLITE_SYNCHRONOUS", ["NORMAL", "FULL"], "NORMAL"),
    maxDeliveries: readInt(env, "CONSUMER_MAX_DELIVERIES", 5, 1),
    retryDelayMs: readInt(env, "CONSUMER_RETRY_DELAY_MS", 200, 1),
    ackWaitMs: readInt(env, "CONSUMER_ACK_WAIT_MS", 5000, 100),
    faultDelay: {
      ms: readInt(env, "FAULT_DELAY_MS", 0, 0),
      methods: readString(env, "FAULT_DELAY_METHODS", "").split(",").filter((m) => m !== ""),
    },
    reservationTtlMs: readInt(env, "RESERVATION_TTL_MS", 15 * 60 * 1000, 1000),
    reservationSweepMs: readInt(env, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100),
    natsUrl: readString(env, "NATS_URL", `nats://127.0.0.1:${readInt(env, "NATS_PORT", 4222, 1, 65535)}`),
  };
}
