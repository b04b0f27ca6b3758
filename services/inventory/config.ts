import { join } from "node:path";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { readGrpcAddress, consumerConfig, readChoices, readInt, readMs, serviceBaseConfig, type ConsumerConfig, type Env, type ServiceBaseConfig } from "../../shared/config/index.js";

/** The inventory service's configuration, read from the environment once. */
export interface InventoryConfig extends ServiceBaseConfig, ConsumerConfig {
  dbFile: string;
  reservationTtlMs: number;
  reservationSweepMs: number;
  /** The order service, asked what became of an order before its old reservation is released. */
  orderAddress: string;
  /** Fault injection for tests and drills: delay these RPCs (all when empty) by this many ms. */
  faultDelay: { ms: number; methods: string[] };
}

/** Reads the inventory service's configuration (see the README's environment table). */
export function inventoryConfig(env: Env): InventoryConfig {
  const base = serviceBaseConfig(env, { grpc: ["INVENTORY_GRPC_PORT", 50052], admin: ["INVENTORY_ADMIN_PORT", 9052] });
  return {
    ...base,
    dbFile: join(base.dataDir, "inventory.db"),
    ...consumerConfig(env),
    faultDelay: {
      ms: readMs(env, "FAULT_DELAY_MS", 0),
      methods: readChoices(env, "FAULT_DELAY_METHODS", InventoryService.methods.map((method) => method.name)),
    },
    reservationTtlMs: readInt(env, "RESERVATION_TTL_MS", 15 * 60 * 1000, 1000),
    reservationSweepMs: readMs(env, "RESERVATION_SWEEP_INTERVAL_MS", 30_000, 100),
    orderAddress: readGrpcAddress(env, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051),
  };
}
