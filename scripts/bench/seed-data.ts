/**
 * The deterministic orders `scripts/seed-orders.ts` writes, so that the load
 * generator can name any seeded order or customer from its index alone
 * (no id list crosses a process boundary).
 */

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford base32, as services/order/order-id.ts

/** Create time of seeded order 0 (epoch ms); order i is created i seconds later. */
export const SEED_EPOCH_MS = Date.UTC(2025, 0, 1);
/** Seconds between two seeded orders' create times. */
export const SEED_SPACING_MS = 1000;
/** Orders each seeded customer holds (so a customer's list is one page whatever the total). */
export const SEED_ORDERS_PER_CUSTOMER = 10;
/** SKUs seeded orders buy (they exist only in the seeded orders and read models, not in inventory). */
export const SEED_SKUS = 64;

/** A 32-bit integer hash (the finaliser of MurmurHash3), for repeatable pseudo-random fields. */
export function mix32(value: number): number {
  let x = value >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** The id of seeded order `i`: "ord_" and a ULID whose time is its create time, as real ids are. */
export function seedOrderId(i: number): string {
  let time = "";
  let t = SEED_EPOCH_MS + i * SEED_SPACING_MS;
  for (let k = 0; k < 10; k++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let random = "";
  const words = [mix32(i), mix32(i ^ 0x9e3779b9), mix32(i + 0x632be5ab), mix32(i ^ 0x5bd1e995)];
  for (let k = 0; k < 16; k++) random += ALPHABET[(words[k >> 2]! >>> ((k & 3) * 5)) & 31];
  return `ord_${time}${random}`;
}

/** How many customers `orders` seeded orders belong to. */
export function seedCustomerCount(orders: number): number {
  return Math.max(1, Math.ceil(orders / SEED_ORDERS_PER_CUSTOMER));
}

/** The prefix of seeded customers' ids: customer `c` is `${SEED_CUSTOMER_PREFIX}${c}`. */
export const SEED_CUSTOMER_PREFIX = "seed-cust-";

/** The customer id of seeded customer `c`. */
export function seedCustomerId(c: number): string {
  return `${SEED_CUSTOMER_PREFIX}${c}`;
}

/** The SKU of seeded SKU `k`. */
export function seedSku(k: number): string {
  return `SEED-SKU-${k}`;
}

/** One seeded order line. */
export interface SeedLine {
  sku: string;
  quantity: number;
  unitPriceMinor: number;
}

/** Everything about seeded order `i` of a seed of `total` orders. Every seeded order is CONFIRMED (version 2). */
export interface SeedOrder {
  id: string;
  customerId: string;
  lines: SeedLine[];
  totalMinor: number;
  createTime: number;
  updateTime: number;
}

/** Seeded order `i` of a seed of `total` orders (customers are assigned round-robin). */
export function seedOrder(i: number, total: number): SeedOrder {
  const h = mix32(i * 7919 + 17);
  const lineCount = 1 + (h % 3);
  const lines: SeedLine[] = [];
  for (let l = 0; l < lineCount; l++) {
    // Distinct SKUs per order: consecutive SKUs from a hashed start.
    const sku = seedSku(((h >>> 8) + l) % SEED_SKUS);
    lines.push({ sku, quantity: 1 + ((h >>> (4 + l)) % 3), unitPriceMinor: 100 + (mix32(i + l) % 4900) });
  }
  const createTime = SEED_EPOCH_MS + i * SEED_SPACING_MS;
  return {
    id: seedOrderId(i),
    customerId: seedCustomerId(i % seedCustomerCount(total)),
    lines,
    totalMinor: lines.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0),
    createTime,
    updateTime: createTime + 40,
  };
}
