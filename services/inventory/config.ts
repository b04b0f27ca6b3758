import { join } from "node:path";
import { readChoice, readInt, readString, type Env } from "../../shared/config/index.js";

/** The inventory service's configuration, read from the environment once. */
export interface InventoryConfig {
  host: string;
  port: number;
  dbFile: string;
  logLevel: string;
  synchronous: "NORMAL" | "FULL";
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
  };
}
