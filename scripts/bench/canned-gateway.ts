/**
 * The gateway's request handler with a canned query service: the gateway's
 * own routes, token verifier (with the dev admin's token, verified once, as
 * for a steady client), cached reads, read cache, metrics, load shedder and
 * rate limiter, and a `call` that answers every read with an order at once.
 * For measuring the gateway's hit path by itself (handler-hits.ts,
 * hit-server.ts).
 */
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService, OrderSchema } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService, GetOrderResponseSchema } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { cachedReads } from "../../gateway/cached-reads.js";
import { createGatewayHandler } from "../../gateway/http-server.js";
import { GatewayMetrics } from "../../gateway/metrics.js";
import { LoadShedder } from "../../gateway/load-shedder.js";
import { RateLimiter } from "../../gateway/rate-limiter.js";
import { ReadCache } from "../../gateway/read-cache.js";
import { routesOf } from "../../gateway/routes/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { JwtVerifier } from "../../shared/security/index.js";
import { DEV_AUDIENCE, DEV_ISSUER, writeDevCredentials } from "../dev-security.js";

export interface CannedGateway {
  handler: ReturnType<typeof createGatewayHandler>;
  /** `Bearer <the dev admin's token>`, already verified (known). */
  authorization: string;
  cache: ReadCache;
  close(): void;
}

/** A new dev key pair's admin token, as an Authorization header value, and the public key that verifies it. */
export async function devAdminCredentials(): Promise<{ authorization: string; publicKeyPem: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-canned-gateway-"));
  try {
    const tokens = await writeDevCredentials(dataDir);
    return { authorization: `Bearer ${tokens.admin}`, publicKeyPem: readFileSync(join(dataDir, "secrets", "jwt-public.pem"), "utf8") };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The gateway's handler with a canned query service (its callers, hit-server.ts and handler-hits.ts, turn off V8's pretenuring first, as the gateway's main does). */
export async function cannedGateway(): Promise<CannedGateway> {
  const routes = routesOf([OrderService, InventoryService, QueryService]);
  const cache = new ReadCache(600_000);
  const shedder = new LoadShedder({ maxInFlight: 100000, maxEventLoopLagMs: 100000 });
  const metrics = new GatewayMetrics({ cache, shedder, policies: [] });
  const { authorization, publicKeyPem } = await devAdminCredentials();
  const jwt = new JwtVerifier({ publicKeyPem, issuer: DEV_ISSUER, audience: DEV_AUDIENCE });
  await jwt.authenticate(authorization);
  const order = (id: string) =>
    create(GetOrderResponseSchema, {
      order: create(OrderSchema, { id, customerId: "c-1", status: 2, items: [{ sku: "SKU-1", quantity: 2 }, { sku: "SKU-2", quantity: 1 }] as never, totalMinor: 2599n, currencyCode: "USD", version: 3n } as never),
    });
  const handler = createGatewayHandler({
    routes,
    auth: {
      known: (a) => jwt.known(a),
      verify: (a) => jwt.verify(a),
      linkMetadata: () => ({}),
      rateLimiter: new RateLimiter({ perSecond: 1e9, burst: 1e9 }),
    },
    call: async (_route, request) => order((request as unknown as { id: string }).id) as never,
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger: silentLogger(),
    limits: { defaultTimeoutMs: 5000, maxTimeoutMs: 30000, maxBodyBytes: 1 << 20, maxJsonDepth: 32, maxInFlightPerCaller: 512 },
    shedder,
    cache: { store: cache, routes: cachedReads },
    metrics,
  });
  return { handler, authorization, cache, close: () => shedder.close() };
}
