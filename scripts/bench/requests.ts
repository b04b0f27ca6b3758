/**
 * What a load run sends, as plain data (it crosses to the load-generator
 * process over IPC), and the generator that turns it into one request after
 * another there.
 */
import { seedOrderId } from "./seed-data.js";

/** A request description that survives structured cloning. */
export type RequestSpec =
  /** The same request every time. */
  | { kind: "fixed"; method: "GET" | "POST"; path: string; body?: string }
  /**
   * GET /v1/orders/{id} of seeded orders: without `hotSet`, every one of `orders` once per cycle in a
   * scattered order, the cycle going on from run to run, each read asking for a fresh answer
   * (`cache-control: no-cache`: the gateway's cache never answers it, however fast a cycle comes
   * round); with `hotSet`, uniformly among that many of them (a cache answers nearly all).
   */
  | { kind: "seeded-order"; orders: number; hotSet?: number }
  /**
   * As seeded-order, of the orders `ids` names (orders the bench created in a running Orderly,
   * whose ids it cannot derive: the list goes to the load generator with each job, ~30 bytes an id).
   */
  | { kind: "order-ids"; ids: string[]; hotSet?: number }
  /** GET /v1/customers/{id}/orders of every one of `customers` customers named `${customerPrefix}${n}`, once per cycle, scattered. */
  | { kind: "customer-orders"; customerPrefix: string; customers: number }
  /** GET /v1/inventory/{sku} of one of `skus`, uniformly. */
  | { kind: "inventory-item"; skus: string[] }
  /**
   * POST `path` with a CreateOrder body: one line of one of `skus` (quantity 1) for one of
   * `customers` customers named `${customerPrefix}${n}`; no Idempotency-Key.
   */
  | { kind: "create-order"; path: string; skus: string[]; customers: number; customerPrefix: string };

/** One concrete request. */
export interface HttpRequest {
  method: string;
  path: string;
  body: string | undefined;
  /** Header lines of its own, each ending in CRLF. */
  headers?: string;
}

/** What a read that must reach the service sends. */
const NO_CACHE = "cache-control: no-cache\r\n";

/** A prime above any seed size, so i ↦ i·STRIDE mod n visits every index of [0, n) once per cycle. */
const STRIDE = 1_000_003;

/**
 * Where each cycle stopped, by name, kept by whoever generates load: a run
 * of the same target goes on from there, so the next run (the half-load run
 * right after a saturation run, say) does not read again what the last one
 * read a few seconds before, when the gateway's cache may still hold it.
 */
export type CyclePositions = Map<string, number>;

/** Indices of [0, n): each once per cycle, scattered (consecutive picks are far apart), from where cycle `name` stopped in `positions`, or a random start. */
export function scatteredCycle(n: number, positions?: CyclePositions, name = ""): () => number {
  let k = positions?.get(name) ?? Math.floor(Math.random() * n);
  return () => {
    k = (k + 1) % n;
    positions?.set(name, k);
    return n % STRIDE === 0 ? k : Number((BigInt(k) * BigInt(STRIDE)) % BigInt(n));
  };
}

/** A uniformly random index of [0, n). */
const pick = (n: number) => Math.floor(Math.random() * n);

/** A source of requests for a spec; cycles go on from `positions` (see CyclePositions) when given. */
export function requestGenerator(spec: RequestSpec, positions?: CyclePositions): () => HttpRequest {
  switch (spec.kind) {
    case "fixed":
      return () => ({ method: spec.method, path: spec.path, body: spec.body });
    case "seeded-order":
      return orderReads(spec.orders, seedOrderId, spec.hotSet, positions, `orders:${spec.orders}`);
    case "order-ids":
      return orderReads(spec.ids.length, (i) => spec.ids[i]!, spec.hotSet, positions, `order-ids:${spec.ids.length}`);
    case "customer-orders": {
      const next = scatteredCycle(spec.customers, positions, `customers:${spec.customerPrefix}${spec.customers}`);
      return () => ({ method: "GET", path: `/v1/customers/${spec.customerPrefix}${next()}/orders`, body: undefined });
    }
    case "inventory-item":
      return () => ({ method: "GET", path: `/v1/inventory/${spec.skus[pick(spec.skus.length)]}`, body: undefined });
    case "create-order":
      return () => ({
        method: "POST",
        path: spec.path,
        body: JSON.stringify({
          customerId: `${spec.customerPrefix}${pick(spec.customers)}`,
          items: [{ sku: spec.skus[pick(spec.skus.length)], quantity: 1 }],
        }),
      });
  }
}

/** GET /v1/orders/{id} of `count` orders (`idOf` names each): every one once per cycle, scattered, asking for fresh answers; or uniformly among `hotSet` of them. */
function orderReads(count: number, idOf: (i: number) => string, hotSet: number | undefined, positions: CyclePositions | undefined, cycle: string): () => HttpRequest {
  if (hotSet !== undefined) {
    const hot = Array.from({ length: Math.min(hotSet, count) }, (_, j) => idOf((j * STRIDE) % count));
    return () => ({ method: "GET", path: `/v1/orders/${hot[pick(hot.length)]}`, body: undefined });
  }
  const next = scatteredCycle(count, positions, cycle);
  return () => ({ method: "GET", path: `/v1/orders/${idOf(next())}`, body: undefined, headers: NO_CACHE });
}
