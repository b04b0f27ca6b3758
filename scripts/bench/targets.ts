/**
 * The HTTP targets of the bench: each is one entry (where it is, what it
 * sends, which ceiling it is compared with, which processes serve it). A new
 * variant is one more entry here, and is measured, compared and reported like
 * the others (as `get-order-cached` was); targets that read seeded orders get
 * a mirror on the large stack for the growth check.
 */
import type { Watched } from "./proc.js";
import type { RequestSpec } from "./requests.js";
import { BENCH_SKUS, type Stack } from "./orderly.js";

/** Where an HTTP target listens. */
export interface Endpoint {
  host: string;
  port: number;
}

/** One thing measured over HTTP. */
export interface HttpTarget {
  id: string;
  label: string;
  endpoint: Endpoint;
  request: RequestSpec;
  /** The bearer token every request carries: the stack's admin (the ceilings get the same bytes and ignore them). */
  token: string;
  /** The id of the ceiling target it is compared with (none for a ceiling itself). */
  ceiling?: string;
  /** For growth comparisons: the target measured on the small stack this one mirrors. */
  growthOf?: string;
  /**
   * Work goes on after its answers (an order's events are published and
   * applied): it is saturated in one run of its own, not in slices between
   * the ceiling's, which that work would slow while escaping its own count.
   */
  leavesWork?: boolean;
  /** Orders stored in the stack it runs against. */
  storedOrders?: number;
  /** The processes serving it, whose CPU per request is measured during saturation runs. */
  processes: Watched[];
}

/** The ceiling processes' endpoints and processes. */
export interface CeilingEndpoints {
  hello: Endpoint;
  helloProcesses: Watched[];
  chain: Endpoint;
  chainProcesses: Watched[];
  /** The bearer token Orderly's targets send, sent to the ceilings too so that they parse the same header bytes. */
  token: string;
}

const gatewayOf = (stack: Stack): Endpoint => ({ host: "127.0.0.1", port: stack.system.gateway.port });

/** Every process of a stack (a restarted service is followed). */
export function stackProcesses(stack: Stack): Watched[] {
  return [
    ...(["gateway", "order", "inventory", "query"] as const).map((name) => ({ name, pid: () => stack.system[name].child.pid })),
    { name: "nats-server", pid: () => stack.system.nats.child().pid },
  ];
}

/** The ceilings measured over HTTP. */
export function ceilingTargets(c: CeilingEndpoints): { hello: HttpTarget; chain: HttpTarget } {
  return {
    hello: {
      id: "ceiling-http-hello",
      label: "bare node:http hello",
      endpoint: c.hello,
      request: { kind: "fixed", method: "GET", path: "/hello" },
      token: c.token,
      processes: c.helloProcesses,
    },
    chain: {
      id: "ceiling-http-grpc-grpc",
      label: "bare HTTP→gRPC→gRPC echo",
      endpoint: c.chain,
      processes: c.chainProcesses,
      request: { kind: "create-order", path: "/echo", skus: BENCH_SKUS, customers: 10_000, customerPrefix: "bench-c" },
      token: c.token,
    },
  };
}

/** The read targets: on the small stack, and the growth mirrors on the large one. */
export function readTargets(small: Stack, large: Stack | undefined, hello: HttpTarget): HttpTarget[] {
  const onSmall: HttpTarget[] = [
    {
      // Every seeded order once per cycle: no id repeats within the cache's TTL, so every read reaches the query service.
      id: "get-order",
      label: "GET /v1/orders/{id}",
      endpoint: gatewayOf(small),
      token: small.system.tokens.admin,
      request: { kind: "seeded-order", orders: small.seededOrders },
      ceiling: hello.id,
      storedOrders: small.seededOrders,
      processes: stackProcesses(small),
    },
    {
      // The gateway's read cache (GATEWAY_CACHE_TTL_MS) answering: 64 hot orders, so nearly every read is a hit.
      id: "get-order-cached",
      label: "GET /v1/orders/{id} (cached: 64 hot orders)",
      endpoint: gatewayOf(small),
      token: small.system.tokens.admin,
      request: { kind: "seeded-order", orders: small.seededOrders, hotSet: 64 },
      ceiling: hello.id,
      storedOrders: small.seededOrders,
      processes: stackProcesses(small),
    },
    {
      id: "get-inventory",
      label: "GET /v1/inventory/{sku}",
      endpoint: gatewayOf(small),
      token: small.system.tokens.admin,
      request: { kind: "inventory-item", skus: BENCH_SKUS },
      ceiling: hello.id,
      processes: stackProcesses(small),
    },
    {
      id: "list-customer-orders",
      label: "GET /v1/customers/{id}/orders",
      endpoint: gatewayOf(small),
      token: small.system.tokens.admin,
      request: { kind: "seeded-customer-orders", customers: small.seededCustomers },
      ceiling: hello.id,
      storedOrders: small.seededOrders,
      processes: stackProcesses(small),
    },
  ];
  // Every target that reads seeded orders gets a mirror on the large stack.
  const onLarge: HttpTarget[] = large
    ? onSmall
        .filter((t) => t.storedOrders !== undefined)
        .map((t) => ({
          ...t,
          id: `${t.id}@large`,
          label: `${t.label} (${large.seededOrders.toLocaleString("en-US")} stored)`,
          endpoint: gatewayOf(large),
          token: large.system.tokens.admin,
          request:
            t.request.kind === "seeded-order"
              ? { ...t.request, orders: large.seededOrders }
              : t.request.kind === "seeded-customer-orders"
                ? { kind: "seeded-customer-orders", customers: large.seededCustomers }
                : t.request,
          growthOf: t.id,
          storedOrders: large.seededOrders,
          processes: stackProcesses(large),
        }))
    : [];
  // Each mirror right after its small twin, so that the pair is measured as close in time as possible.
  return [hello, ...onSmall.flatMap((t) => [t, ...onLarge.filter((l) => l.growthOf === t.id)])];
}

/** The id of the POST /v1/orders target. */
export const CREATE_ORDER_ID = "create-order";

/** The write target: POST /v1/orders on the small stack (one unit of a restocked SKU, 10,000 customers, no Idempotency-Key). */
export function writeTargets(small: Stack, chain: HttpTarget): HttpTarget[] {
  return [
    chain,
    {
      id: CREATE_ORDER_ID,
      label: "POST /v1/orders",
      endpoint: gatewayOf(small),
      token: small.system.tokens.admin,
      request: { kind: "create-order", path: "/v1/orders", skus: BENCH_SKUS, customers: 10_000, customerPrefix: "bench-c" },
      ceiling: chain.id,
      leavesWork: true,
      processes: stackProcesses(small),
    },
  ];
}

/** The target the "cached GET order" goal is judged on: the cached variant when measured, else the plain read. */
export function cachedOrderTargetId(ids: readonly string[]): { id: string; isCached: boolean } {
  return ids.includes("get-order-cached") ? { id: "get-order-cached", isCached: true } : { id: "get-order", isCached: false };
}
