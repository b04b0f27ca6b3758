import { expect, test } from "vitest";
import { percentile } from "../helpers/load.js";
import { waitFor } from "../helpers/processes.js";
import { reasonOf, startSystem } from "../helpers/system.js";
import { checkStockInvariants } from "./invariants.js";

const SKUS = ["IO-1", "IO-2", "IO-3"];
const STOCK = 3000;
const BUDGET_MS = 2000;

test("inventory killed (-9) and paused (SIGSTOP) during a 60 s load: nothing hangs past its deadline, only 503/504 as 5xx, and every accepted order ends confirmed or rejected with stock consistent", async () => {
  await using system = await startSystem({ INVENTORY_BREAKER_HALF_OPEN_MS: "1000" });
  for (const sku of SKUS) await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: STOCK, unitPriceMinor: "100" } });

  const durations: number[] = [];
  const statuses = new Map<string, number>();
  const accepted: string[] = [];
  const endAt = Date.now() + 60_000;
  const faults = (async () => {
    const at = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, endAt - 60_000 + ms - Date.now())));
    await at(8_000);
    await system.inventory.stop("SIGKILL");
    await at(18_000);
    await system.restart("inventory");
    await at(30_000);
    system.inventory.child.kill("SIGSTOP");
    await at(42_000);
    system.inventory.child.kill("SIGCONT");
  })();
  let i = 0;
  const client = async () => {
    while (Date.now() < endAt) {
      const n = i++;
      const started = performance.now();
      const r = await system.api("POST", "/v1/orders", {
        body: { customerId: `load-${n % 40}`, items: [{ sku: SKUS[n % SKUS.length]!, quantity: 1 + (n % 4) }] },
        headers: { "x-request-timeout": String(BUDGET_MS) },
      });
      durations.push(performance.now() - started);
      const key = `${r.status} ${reasonOf(r.body) ?? ""}`.trim();
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (r.status === 202) accepted.push(r.body.id);
      if (r.status >= 500) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await Promise.all([faults, ...Array.from({ length: 8 }, client)]);

  // A hang is a request that outlives its deadline; 500 ms covers timer and scheduling jitter on a loaded 2-core machine.
  const overDeadline = durations.filter((ms) => ms > BUDGET_MS + 500);
  console.log(
    `[figures] ${durations.length} requests in 60 s with inventory killed for 10 s and paused for 12 s: ` +
      `${JSON.stringify(Object.fromEntries(statuses))}; latency p50 ${Math.round(percentile(durations, 50))} ms, p99 ${Math.round(percentile(durations, 99))} ms, max ${Math.round(Math.max(...durations))} ms; ${accepted.length} accepted as PENDING`,
  );
  expect(overDeadline).toEqual([]);
  const unexpected = [...statuses.keys()].filter((k) => !/^(200|202|400 INSUFFICIENT_STOCK|503 \w+|504 \w+)$/.test(k));
  expect(unexpected).toEqual([]);
  expect(accepted.length).toBeGreaterThan(0);

  const settled = await waitFor(() => {
    const state = checkStockInvariants(system.dataDir, Object.fromEntries(SKUS.map((s) => [s, STOCK])));
    return state.pending === 0 && state.orphanReservations.length === 0 && state.badItems.length === 0 ? state : undefined;
  }, "every accepted order to end CONFIRMED or REJECTED with consistent stock", 60_000, 250);
  expect(settled.confirmedWithoutReservation).toEqual([]);
});
