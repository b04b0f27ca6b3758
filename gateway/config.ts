import { readAddress, readGrpcAddress, natsAuthConfig, observabilityConfig, readInt, readMs, readServiceNatsUrl, readString, type Env, type NatsAuth, type ObservabilityConfig } from "../shared/config/index.js";
import { securityConfig, type SecurityConfig } from "../shared/security/index.js";
import type { RateLimit } from "./rate-limiter.js";
import type { GatewayLimits } from "./http-server.js";
import { DEFAULT_MAX_BYTES } from "./read-cache.js";

/** The gateway's configuration, read from the environment once. */
export interface GatewayConfig extends ObservabilityConfig {
  host: string;
  port: number;
  /** The admin server's port: /metrics, /healthz, /status and /status.json (0 picks a free one). */
  adminPort: number;
  /** The variables that set the two ports (for a message when one cannot be listened on). */
  portSettings: { api: string; admin: string };
  orderAddress: string;
  inventoryAddress: string;
  queryAddress: string;
  /** host:port of each service's admin server (/metrics, /status.json), for the status page. */
  adminAddresses: { order: string; inventory: string; query: string };
  limits: GatewayLimits;
  shedding: { maxInFlight: number; maxEventLoopLagMs: number };
  /** TTL of the read cache (ms); 0 turns it off. */
  cacheTtlMs: number;
  /** What the read cache's bodies may take in all (bytes). */
  cacheMaxBytes: number;
  natsUrl: string;
  natsAuth: NatsAuth | undefined;
  /** Slow-client guards: time to receive headers / a whole request (ms). */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Largest size of a request's headers (bytes); larger get 431. */
  maxHeaderBytes: number;
  /** Requests per principal. */
  rateLimit: RateLimit;
  /** Token verification, the link key, mTLS to the services. */
  security: SecurityConfig;
}

/** How long the read cache keeps an entry unless GATEWAY_CACHE_TTL_MS says otherwise (ms). */
export const DEFAULT_CACHE_TTL_MS = 5000;

/** The variables that set the gateway's ports. */
const PORT_SETTINGS = { api: "GATEWAY_PORT", admin: "GATEWAY_ADMIN_PORT" } as const;

/** Reads the gateway's configuration (see the README's environment table). */
export function gatewayConfig(env: Env): GatewayConfig {
  const maxTimeoutMs = readMs(env, "MAX_REQUEST_TIMEOUT_MS", 30_000, 1);
  // The whole request may take as long as its longest deadline, and a little more for its body.
  const requestTimeoutMs = maxTimeoutMs + 10_000;
  return {
    ...observabilityConfig(env),
    host: readString(env, "ORDERLY_BIND_HOST", "127.0.0.1"),
    port: readInt(env, PORT_SETTINGS.api, 8080, 0, 65535),
    adminPort: readInt(env, PORT_SETTINGS.admin, 9050, 0, 65535),
    portSettings: PORT_SETTINGS,
    orderAddress: readGrpcAddress(env, "ORDER_ADDRESS", "ORDER_GRPC_PORT", 50051),
    inventoryAddress: readGrpcAddress(env, "INVENTORY_ADDRESS", "INVENTORY_GRPC_PORT", 50052),
    queryAddress: readGrpcAddress(env, "QUERY_ADDRESS", "QUERY_GRPC_PORT", 50053),
    adminAddresses: {
      order: readAddress(env, "ORDER_ADMIN_ADDRESS", "ORDER_ADMIN_PORT", 9051, 0),
      inventory: readAddress(env, "INVENTORY_ADMIN_ADDRESS", "INVENTORY_ADMIN_PORT", 9052, 0),
      query: readAddress(env, "QUERY_ADMIN_ADDRESS", "QUERY_ADMIN_PORT", 9053, 0),
    },
    limits: {
      defaultTimeoutMs: readMs(env, "DEFAULT_DEADLINE_MS", 5000, 1),
      maxTimeoutMs,
      maxBodyBytes: readInt(env, "MAX_BODY_BYTES", 1024 * 1024, 1),
      maxJsonDepth: readInt(env, "MAX_JSON_DEPTH", 32, 1, 1000),
      maxInFlightPerCaller: readInt(env, "GATEWAY_MAX_IN_FLIGHT_PER_CALLER", 512, 1),
    },
    shedding: {
      maxInFlight: readInt(env, "GATEWAY_MAX_IN_FLIGHT", 2048, 1),
      maxEventLoopLagMs: readInt(env, "GATEWAY_MAX_EVENT_LOOP_LAG_MS", 1000, 1),
    },
    cacheTtlMs: readInt(env, "GATEWAY_CACHE_TTL_MS", DEFAULT_CACHE_TTL_MS, 0),
    cacheMaxBytes: readInt(env, "GATEWAY_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES, 1024),
    natsUrl: readServiceNatsUrl(env),
    natsAuth: natsAuthConfig(env),
    // Node.js refuses to start a server whose headers timeout is longer than its request timeout.
    headersTimeoutMs: readInt(env, "GATEWAY_HEADERS_TIMEOUT_MS", 10_000, 100, requestTimeoutMs, "at most the request timeout, MAX_REQUEST_TIMEOUT_MS + 10000 ms, as Node.js requires"),
    requestTimeoutMs,
    maxHeaderBytes: readInt(env, "GATEWAY_MAX_HEADER_BYTES", 16 * 1024, 1024),
    rateLimit: {
      perSecond: readInt(env, "RATE_LIMIT_PER_SECOND", 100, 1),
      burst: readInt(env, "RATE_LIMIT_BURST", 200, 1),
    },
    security: securityConfig(env, readString(env, "ORDERLY_DATA_DIR", "./.data"), { requireJwt: true }),
  };
}
