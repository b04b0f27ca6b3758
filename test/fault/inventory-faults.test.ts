import { expect, test } from "vitest";
import { percentile, runPool } from "../helpers/load.js";
import { waitFor } from "../helpers/processes.js";
import { reasonOf, startSystem } from "../helpers/system.js";
import { checkStockInvariants } from "./invariants.js";

interface LogLine {
  msg?: string;
  requestId?: string;
  reason?: string;
  ms?: number;
  method?: string;
}

function logLines(logs: readonly string[]): LogLine[] {
  return logs.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

test.each([
  // A reservation that gets through in time is a 200; once the breaker opens on the timeouts, the rest fail fast.
  // 504 stays allowed when degrading: a 202 needs the order service to get the CPU within its margin.
  { fallback: "degrade", statuses: [202, 200, 504] },
  { fallback: "fail-fast", statuses: [504, 503] },
])(
  "inventory delayed 5 s with a 2 s budget ($fallback): the client gets $statuses.0 within 2.1 s at p99, inventory sees the cancellation, and no reservation is left behind",
  async ({ fallback, statuses }) => {
    await using system = await startSystem({
      INVENTORY_FALLBACK: fallback,
      PENDING_RECOVERY_AFTER_MS: "1000",
      PENDING_RECOVERY_INTERVAL_MS: "300",
      FAULT_DELAY_MS: "5000",
      FAULT_DELAY_METHODS: "ReserveStock",
    });
    await system.api("POST", "/v1/inventory/SLOW-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });

    const results = await runPool(20, 5, async (i) => {
      const started = performance.now();
      const r = await system.api("POST", "/v1/orders", {
        body: { customerId: "sloth", items: [{ sku: "SLOW-1", quantity: 1 }] },
        headers: { "x-request-timeout": "2000", "x-request-id": `slow-${fallback}-${i}` },
      });
      return { ms: performance.now() - started, status: r.status, reason: reasonOf(r.body) };
    });
    const p99 = percentile(results.map((r) => r.ms), 99);
    console.log(`[figures] ${fallback}: 20 orders with inventory delayed 5 s and a 2 s budget: ${JSON.stringify([...new Set(results.map((r) => `${r.status} ${r.reason ?? ""}`.trim()))])}, p99 ${Math.round(p99)} ms`);
    expect(results.filter((r) => !statuses.includes(r.status))).toEqual([]);
    expect(results.filter((r) => r.status === statuses[0]).length).toBeGreaterThanOrEqual(5);
    // The budget and room for a loaded machine's stalls (504s are answered at the budget itself).
    expect(p99).toBeLessThan(2500);

    // Inventory saw the callers give up and did no work for them.
    const cancelled = logLines(system.inventory.logs).filter((l) => l.requestId?.startsWith(`slow-${fallback}-`) && l.reason === "CANCELLED");
    expect(cancelled.length).toBeGreaterThanOrEqual(5);

    // Recovery: inventory answers promptly again; every order settles and no reservation is left behind.
    await system.restart("inventory", { FAULT_DELAY_MS: "0" });
    const settled = await waitFor(() => {
      const state = checkStockInvariants(system.dataDir, { "SLOW-1": 100 });
      return state.pending === 0 && state.orphanReservations.length === 0 && state.badItems.length === 0 ? state : undefined;
    }, "every order settled and no orphan reservation", 30_000, 200);
    expect(settled.confirmedWithoutReservation).toEqual([]);
  },
);

test("inventory answering UNAVAILABLE to every call: at most 3 attempts per request, no retry of CreateOrder, the breaker opens within 5 failures and then fails fast, and closes within halfOpenAfter + 1 s of recovery", async () => {
  await using system = await startSystem({ INVENTORY_FALLBACK: "fail-fast", INVENTORY_BREAKER_HALF_OPEN_MS: "2000" }, { inventoryProxy: true });
  const proxy = system.inventoryProxy!;
  await system.api("POST", "/v1/inventory/DOWN-1:restock", { body: { quantity: 100 } });
  proxy.reset();

  const reasons: string[] = [];
  const retryAfterWhileOpen: string[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await system.api("POST", "/v1/orders", {
      body: { customerId: "rex", items: [{ sku: "DOWN-1", quantity: 1 }] },
      headers: { "x-request-id": `down-${i}`, "x-request-timeout": "3000" },
    });
    expect(r.status).toBe(503);
    reasons.push(reasonOf(r.body)!);
    if (reasonOf(r.body) === "CIRCUIT_OPEN") retryAfterWhileOpen.push(r.headers.get("retry-after")!);
  }
  // While open, Retry-After says when the breaker tries the inventory again (half-open after 2 s), not always 1 s.
  expect(retryAfterWhileOpen[0]).toBe("2");
  // The order service logs a failed call once it has answered it: wait for the last one's line to arrive.
  const isCreateFailure = (l: LogLine) => l.msg === "call failed" && l.method?.endsWith("/CreateOrder") === true;
  await waitFor(() => logLines(system.order.logs).some((l) => isCreateFailure(l) && l.requestId === "down-11"), "the order service's log line of the last CreateOrder", 5_000);
  const order = logLines(system.order.logs);
  const retriesOf = (id: string) => order.filter((l) => l.msg === "retrying a call" && l.requestId === id).length;
  for (let i = 0; i < 12; i++) expect(retriesOf(`down-${i}`)).toBeLessThanOrEqual(2);
  const firstOpen = reasons.indexOf("CIRCUIT_OPEN");
  const failuresBeforeOpen = reasons.slice(0, firstOpen).reduce((sum, _, i) => sum + 1 + retriesOf(`down-${i}`), 0);
  expect(firstOpen).toBeGreaterThan(0);
  expect(failuresBeforeOpen).toBeLessThanOrEqual(5);
  expect(reasons.slice(firstOpen).every((r) => r === "CIRCUIT_OPEN")).toBe(true);

  // CreateOrder is not idempotent: the gateway never retries it, so the order service saw each request once.
  const createCalls = order.filter(isCreateFailure);
  expect(createCalls.map((l) => l.requestId).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `down-${i}`).sort());
  expect(logLines(system.gateway.logs).filter((l) => l.msg === "retrying a call")).toEqual([]);
  const fastFails = createCalls.filter((l) => l.reason === "CIRCUIT_OPEN").map((l) => l.ms!);
  console.log(`[figures] breaker open after ${failuresBeforeOpen} failed attempts; CreateOrder while open: p50 ${percentile(fastFails, 50)} ms, max ${Math.max(...fastFails)} ms in the order service`);
  // Failing fast: no attempt and no retry while open (the retries counted above are none).
  // (2–3 ms when the machine is quiet; the bound only says nothing was waited for, a speed figure belongs in the bench.)
  for (let i = firstOpen; i < 12; i++) expect(retriesOf(`down-${i}`), `down-${i}`).toBe(0);
  expect(Math.max(...fastFails)).toBeLessThan(250);

  proxy.pass();
  const recovered = performance.now();
  await waitFor(async () => {
    const r = await system.api("POST", "/v1/orders", { body: { customerId: "rex", items: [{ sku: "DOWN-1", quantity: 1 }] } });
    return r.status === 200;
  }, "the breaker to close", 10_000, 100);
  const closedAfter = performance.now() - recovered;
  console.log(`[figures] breaker closed ${Math.round(closedAfter)} ms after inventory recovered (halfOpenAfter 2000 ms)`);
  expect(closedAfter).toBeLessThan(4000);
});

test("bulkhead: calls beyond limit + queue are rejected at once with 429 and Retry-After while the gateway's event loop stays responsive", async () => {
  await using system = await startSystem(
    { INVENTORY_FALLBACK: "fail-fast", INVENTORY_BULKHEAD_LIMIT: "4", INVENTORY_BULKHEAD_QUEUE: "4", PENDING_RECOVERY_AFTER_MS: "600000" },
    { inventoryProxy: true },
  );
  const proxy = system.inventoryProxy!;
  await system.api("POST", "/v1/inventory/BH-1:restock", { body: { quantity: 100 } });
  proxy.blackhole();

  let lagMax = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const health = await system.api("GET", "/healthz");
      lagMax = Math.max(lagMax, health.body.eventLoopLagMs);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  const results = await Promise.all(
    Array.from({ length: 30 }, async () => {
      const started = performance.now();
      const r = await system.api("POST", "/v1/orders", { body: { customerId: "bea", items: [{ sku: "BH-1", quantity: 1 }] }, headers: { "x-request-timeout": "2000" } });
      return { ms: performance.now() - started, status: r.status, retryAfter: r.headers.get("retry-after"), reason: reasonOf(r.body) };
    }),
  );
  sampling = false;
  await sampler;
  const rejected = results.filter((r) => r.status === 429);
  const waited = results.filter((r) => r.status === 504);
  console.log(
    `[figures] bulkhead 4+4 with inventory hung: ${rejected.length} rejected (p99 ${Math.round(percentile(rejected.map((r) => r.ms), 99))} ms), ${waited.length} waited for their deadline; gateway event-loop lag max ${Math.round(lagMax)} ms`,
  );
  expect(waited).toHaveLength(8);
  expect(rejected).toHaveLength(22);
  expect(rejected.every((r) => r.reason === "BULKHEAD_FULL" && r.retryAfter === "1")).toBe(true);
  expect(Math.max(...rejected.map((r) => r.ms))).toBeLessThan(1000);
  // Responsive, not fast: a gateway that waited on the hung dependency would lag by its 2 s deadlines.
  // (The figure above is typically 60-100 ms on this 2-core machine; speed belongs to the bench.)
  expect(lagMax).toBeLessThan(1000);
  proxy.pass();
});

test("a client that disconnects cancels the work downstream: the order service's call to inventory is cancelled too, and the order it recorded is settled through events", async () => {
  await using system = await startSystem({ INVENTORY_FALLBACK: "fail-fast", FAULT_DELAY_MS: "5000", FAULT_DELAY_METHODS: "ReserveStock", LOG_LEVEL: "debug" });
  await system.api("POST", "/v1/inventory/GONE-1:restock", { body: { quantity: 10 } });
  const controller = new AbortController();
  const request = fetch(`${system.baseUrl}/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": "gone-1", "x-request-timeout": "20000", authorization: `Bearer ${system.tokens.admin}` },
    body: JSON.stringify({ customerId: "gus", items: [{ sku: "GONE-1", quantity: 1 }] }),
    signal: controller.signal,
  }).catch((error: unknown) => error);
  // Wait until inventory holds the call (inside the injected delay), then hang up.
  await waitFor(
    () => logLines(system.inventory.logs).some((l) => l.requestId === "gone-1" && l.msg === "fault injection: delaying the call"),
    "inventory to hold the call",
  );
  controller.abort();
  await request;
  const cancelledAt = (name: "inventory" | "order") =>
    logLines(system[name].logs).some((l) => l.requestId === "gone-1" && l.reason === "CANCELLED");
  await waitFor(() => cancelledAt("inventory") && cancelledAt("order"), "order and inventory to log the cancellation", 4000);
  // The order it had recorded is settled all the same, through events (the cancelled call reserved nothing): reserved once.
  const item = await waitFor(async () => {
    const it = (await system.api("GET", "/v1/inventory/GONE-1")).body;
    return it.reserved > 0 ? it : undefined;
  }, "the recorded order to be reserved through events");
  expect(item).toMatchObject({ available: 9, reserved: 1 });
});

test("network latency between order and inventory (TCP proxy): orders still succeed while it fits the budget, and no request outlives its budget when it does not", async () => {
  await using system = await startSystem({ INVENTORY_FALLBACK: "degrade" }, { inventoryProxy: true });
  const proxy = system.inventoryProxy!;
  await system.api("POST", "/v1/inventory/LAT-1:restock", { body: { quantity: 100 } });
  const place = async () => {
    const started = performance.now();
    const r = await system.api("POST", "/v1/orders", { body: { customerId: "lou", items: [{ sku: "LAT-1", quantity: 1 }] }, headers: { "x-request-timeout": "2000" } });
    return { ms: performance.now() - started, status: r.status };
  };
  await place(); // connect through the proxy first
  proxy.delay(150);
  const slow = await runPool(10, 5, place);
  expect(slow.map((r) => r.status)).toEqual(Array(10).fill(200));
  expect(Math.min(...slow.map((r) => r.ms))).toBeGreaterThanOrEqual(300);
  proxy.delay(3000);
  const tooSlow = await runPool(10, 5, place);
  console.log(`[figures] 150 ms each way: p50 ${Math.round(percentile(slow.map((r) => r.ms), 50))} ms, all 200; 3 s each way with a 2 s budget: ${JSON.stringify([...new Set(tooSlow.map((r) => r.status))])}, max ${Math.round(Math.max(...tooSlow.map((r) => r.ms)))} ms`);
  expect(tooSlow.every((r) => r.status === 202 || r.status === 504)).toBe(true);
  expect(Math.max(...tooSlow.map((r) => r.ms))).toBeLessThan(3000);
  proxy.pass();
  await waitFor(() => {
    const state = checkStockInvariants(system.dataDir, { "LAT-1": 100 });
    return state.pending === 0 && state.orphanReservations.length === 0 && state.badItems.length === 0;
  }, "every order settled with consistent stock", 30_000, 200);
});

test("inventory killed and started again while the order service's breaker is open: orders are reserved again as soon as it is back, not after the breaker's half-open time", async () => {
  // Half-open after ten minutes: only the connection coming back can let a call through within this test.
  await using system = await startSystem({ INVENTORY_FALLBACK: "fail-fast", INVENTORY_BREAKER_FAILURES: "2", INVENTORY_BREAKER_HALF_OPEN_MS: "600000" });
  await system.api("POST", "/v1/inventory/BACK-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  const order = () => system.api("POST", "/v1/orders", { body: { customerId: "bo", items: [{ sku: "BACK-1", quantity: 1 }] }, headers: { "x-request-timeout": "2000" } });
  expect((await order()).status).toBe(200);

  await system.inventory.stop("SIGKILL");
  const refused = await waitFor(async () => {
    const r = await order();
    return reasonOf(r.body) === "CIRCUIT_OPEN" ? r : undefined;
  }, "the order service's breaker to open");
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("600");

  await system.restart("inventory");
  const back = performance.now();
  const confirmed = await waitFor(async () => {
    const r = await order();
    return r.status === 200 ? r : undefined;
  }, "an order to be reserved once inventory is back", 30_000, 100);
  console.log(`[figures] the first order reserved ${Math.round(performance.now() - back)} ms after inventory was ready again (half-open after 600 s)`);
  expect(confirmed.body.status).toBe("ORDER_STATUS_CONFIRMED");
  // (Log lines arrive after the answers they went with.)
  await waitFor(() => system.order.logs.some((line) => line.includes("the dependency is reachable again")), "the order service's line saying inventory is reachable again");
});
