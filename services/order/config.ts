import { join } from "node:path";
import { consumerConfig, readGrpcAddress, readChoice, readInt, readMs, serviceBaseConfig, type ConsumerConfig, type Env, type ServiceBaseConfig } from "../../shared/config/index.js";
import { ANSWER_WAY_BACK_MS } from "../../shared/grpc/index.js";
import { defaultDependencyPolicyOptions, type DependencyPolicyOptions } from "../../shared/resilience/index.js";

/** The order service's configuration, read from the environment once. */
export interface OrderConfig extends ServiceBaseConfig, ConsumerConfig {
  dbFile: string;
  inventoryAddress: string;
  inventoryPolicy: DependencyPolicyOptions;
  idempotencyKeyTtlMs: number;
  /** Accept orders as PENDING (202) when the inventory is unreachable (degrade), or answer 503 (fail-fast). */
  inventoryFallback: "degrade" | "fail-fast";
  degradeMarginMs: number;
  recoveryAfterMs: number;
  recoveryIntervalMs: number;
}

/** Reads the order service's configuration (see the README's environment table). */
export function orderConfig(env: Env): OrderConfig {
  const base = serviceBaseConfig(env, { grpc: ["ORDER_GRPC_PORT", 50051], admin: ["ORDER_ADMIN_PORT", 9051] });
  return {
    ...base,
    ...consumerConfig(env),
    dbFile: join(base.dataDir, "order.db"),
    inventoryAddress: readGrpcAddress(env, "INVENTORY_ADDRESS", "INVENTORY_GRPC_PORT", 50052),
    inventoryPolicy: {
      name: "inventory",
      attemptTimeoutMs: readMs(env, "INVENTORY_ATTEMPT_TIMEOUT_MS", 2000, ANSWER_WAY_BACK_MS),
      maxAttempts: readInt(env, "INVENTORY_MAX_ATTEMPTS", 3, 1, 10),
      backoffInitialMs: 25,
      backoffMaxMs: 250,
      breakerFailures: readInt(env, "INVENTORY_BREAKER_FAILURES", 5, 1),
      halfOpenAfterMs: readMs(env, "INVENTORY_BREAKER_HALF_OPEN_MS", 5000, 1),
      bulkheadLimit: readInt(env, "INVENTORY_BULKHEAD_LIMIT", 128, 1),
      bulkheadQueue: readInt(env, "INVENTORY_BULKHEAD_QUEUE", 512, 0),
      slowCallMs: defaultDependencyPolicyOptions.slowCallMs,
    },
    idempotencyKeyTtlMs: readInt(env, "IDEMPOTENCY_KEY_TTL_MS", 24 * 60 * 60 * 1000, 24 * 60 * 60 * 1000),
    inventoryFallback: readChoice(env, "INVENTORY_FALLBACK", ["degrade", "fail-fast"], "degrade"),
    degradeMarginMs: readInt(env, "DEGRADE_MARGIN_MS", 250, 0),
    recoveryAfterMs: readInt(env, "PENDING_RECOVERY_AFTER_MS", 10_000, 100),
    recoveryIntervalMs: readMs(env, "PENDING_RECOVERY_INTERVAL_MS", 5000, 100),
  };
}
