import { isDeepStrictEqual } from "node:util";
import { runPool } from "../helpers/load.js";
import { snapshotModels, streamCounts } from "../helpers/models.js";
import { waitFor } from "../helpers/processes.js";
import type { System } from "../helpers/system.js";

export const SKUS = Array.from({ length: 8 }, (_, i) => `EV-${i}`);

/** A small deterministic pseudo-random sequence (tests must be repeatable). */
export function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** Restocks the event-test SKUs with plenty of stock and varied prices. */
export async function stockUp(system: System, quantity = 5000): Promise<void> {
  for (const [i, sku] of SKUS.entries()) {
    const r = await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity, unitPriceMinor: String(100 + i * 25) } });
    if (r.status !== 200) throw new Error(`restock failed: ${r.text}`);
  }
}

/** Creates `count` orders (1-3 lines each) and cancels about a quarter of them; returns every HTTP status. */
export async function orderBurst(system: System, count: number, seed: number, onProgress?: (done: number) => void | Promise<void>): Promise<number[]> {
  const next = random(seed);
  const plans = Array.from({ length: count }, (_, i) => {
    const lines = 1 + Math.floor(next() * 3);
    const skus = [...SKUS].sort(() => next() - 0.5).slice(0, lines);
    return { customerId: `cust-${i % 37}`, items: skus.map((sku) => ({ sku, quantity: 1 + Math.floor(next() * 4) })), cancel: next() < 0.25 };
  });
  let done = 0;
  return runPool(count, 16, async (i) => {
    const plan = plans[i]!;
    const created = await system.api("POST", "/v1/orders", {
      body: { customerId: plan.customerId, items: plan.items },
      headers: { "idempotency-key": `burst-${seed}-${i}`, "x-request-timeout": "20000" },
    });
    let status = created.status;
    if (status === 200 && plan.cancel) {
      status = (await system.api("POST", `/v1/orders/${created.body.id}:cancel`, { headers: { "x-request-timeout": "20000" } })).status;
    }
    done++;
    await onProgress?.(done);
    return status;
  });
}

/** Waits until every outbox row is published and every read model equals what the write models say. */
export async function waitForConvergence(system: System, timeoutMs = 90_000): Promise<ReturnType<typeof snapshotModels>> {
  let last: ReturnType<typeof snapshotModels> | undefined;
  try {
    return await waitFor<ReturnType<typeof snapshotModels> | undefined>(
      () => {
        last = snapshotModels(system.dataDir);
        return last.counts.unpublished === 0 && isDeepStrictEqual(last.write, last.read) ? last : undefined;
      },
      "the read models to equal the write models",
      timeoutMs,
      200,
    ).then((models) => models!);
  } catch (error) {
    if (last) {
      const sizes = Object.fromEntries(
        Object.entries(last.write).map(([k, rows]) => [k, { write: rows.length, read: (last!.read as Record<string, unknown[]>)[k]!.length }]),
      );
      throw new Error(`${String(error)}; sizes ${JSON.stringify(sizes)}; unpublished ${last.counts.unpublished}`);
    }
    throw error;
  }
}

/**
 * Waits until the projector has applied as many events as the streams hold (events delivered to a
 * killed projector come back only after the ack wait), then returns both counts; exactly once means
 * they are equal, never more.
 */
export async function waitForAllApplied(system: System, timeoutMs = 60_000): Promise<{ processed: number; inStreams: number; orderEvents: number }> {
  return waitFor(
    async () => {
      const streams = await streamCounts(system.nats);
      const processed = snapshotModels(system.dataDir).counts.processed;
      const inStreams = streams.ORDERS + streams.INVENTORY;
      return processed >= inStreams ? { processed, inStreams, orderEvents: streams.ORDERS } : undefined;
    },
    "every event in the streams to be applied",
    timeoutMs,
    200,
  );
}
