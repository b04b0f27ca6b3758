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
import { SEED_CUSTOMER_PREFIX } from "./seed-data.js";

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

/**
 * An Orderly the bench measures: a stack it started and seeded, or one
 * already running (see running.ts). Where its gateway listens, who calls,
 * which processes serve it, and which orders and customers its reads name.
 */
export interface OrderlyUnderTest {
  endpoint: Endpoint;
  /** An admin's bearer token. */
  token: string;
  /** Its processes on this machine (none known: no CPU per request). */
  processes: Watched[];
  /** The orders its reads name: those seeded into a started stack, or those the bench created in a running one. */
  storedOrders: number;
  /** GET /v1/orders/{id}: every stored order once per cycle, or uniformly among `hotSet` of them. */
  orderReads: (hotSet?: number) => RequestSpec;
  /** GET /v1/customers/{id}/orders of every customer once per cycle. */
  customerReads: RequestSpec;
}

/** A stack the bench started, with the orders seeded into it. */
export function stackUnderTest(stack: Stack): OrderlyUnderTest {
  return {
    endpoint: { host: "127.0.0.1", port: stack.system.gateway.port },
    token: stack.system.tokens.admin,
    processes: stackProcesses(stack),
    storedOrders: stack.seededOrders,
    orderReads: (hotSet) => ({ kind: "seeded-order", orders: stack.seededOrders, ...(hotSet === undefined ? {} : { hotSet }) }),
    customerReads: { kind: "customer-orders", customerPrefix: SEED_CUSTOMER_PREFIX, customers: stack.seededCustomers },
  };
}

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

/** The read targets: on the Orderly of the main figures, and their growth mirrors on the large stack when there is one. */
export function readTargets(main: OrderlyUnderTest, large: OrderlyUnderTest | undefined, hello: HttpTarget): HttpTarget[] {
  const on = (o: OrderlyUnderTest): HttpTarget[] => [
    {
      // Every stored order once per cycle, each read with cache-control: no-cache, so every one reaches the query service.
      id: "get-order",
      label: "GET /v1/orders/{id}",
      endpoint: o.endpoint,
      token: o.token,
      request: o.orderReads(),
      ceiling: hello.id,
      storedOrders: o.storedOrders,
      processes: o.processes,
    },
    {
      // The gateway's read cache (GATEWAY_CACHE_TTL_MS) answering: 64 hot orders, so nearly every read is a hit.
      id: "get-order-cached",
      label: "GET /v1/orders/{id} (cached: 64 hot orders)",
      endpoint: o.endpoint,
      token: o.token,
      request: o.orderReads(64),
      ceiling: hello.id,
      storedOrders: o.storedOrders,
      processes: o.processes,
    },
    {
      id: "get-inventory",
      label: "GET /v1/inventory/{sku}",
      endpoint: o.endpoint,
      token: o.token,
      request: { kind: "inventory-item", skus: BENCH_SKUS },
      ceiling: hello.id,
      processes: o.processes,
    },
    {
      id: "list-customer-orders",
      label: "GET /v1/customers/{id}/orders",
      endpoint: o.endpoint,
      token: o.token,
      request: o.customerReads,
      ceiling: hello.id,
      storedOrders: o.storedOrders,
      processes: o.processes,
    },
  ];
  const onSmall = on(main);
  // Every target that reads stored orders gets a mirror on the large stack.
  const onLarge: HttpTarget[] = large
    ? on(large)
        .filter((t) => t.storedOrders !== undefined)
        .map((t) => ({ ...t, id: `${t.id}@large`, label: `${t.label} (${large.storedOrders.toLocaleString("en-US")} stored)`, growthOf: t.id }))
    : [];
  // Each mirror right after its small twin, so that the pair is measured as close in time as possible.
  return [hello, ...onSmall.flatMap((t) => [t, ...onLarge.filter((l) => l.growthOf === t.id)])];
}

/** The id of the POST /v1/orders target. */
export const CREATE_ORDER_ID = "create-order";

/** The write target: POST /v1/orders on the Orderly of the main figures (one unit of a restocked SKU, 10,000 customers, no Idempotency-Key). */
export function writeTargets(main: OrderlyUnderTest, chain: HttpTarget): HttpTarget[] {
  return [
    chain,
    {
      id: CREATE_ORDER_ID,
      label: "POST /v1/orders",
      endpoint: main.endpoint,
      token: main.token,
      request: { kind: "create-order", path: "/v1/orders", skus: BENCH_SKUS, customers: 10_000, customerPrefix: "bench-c" },
      ceiling: chain.id,
      leavesWork: true,
      processes: main.processes,
    },
  ];
}

/** The target the "cached GET order" goal is judged on: the cached variant when measured, else the plain read. */
export function cachedOrderTargetId(ids: readonly string[]): { id: string; isCached: boolean } {
  return ids.includes("get-order-cached") ? { id: "get-order-cached", isCached: true } : { id: "get-order", isCached: false };
}
