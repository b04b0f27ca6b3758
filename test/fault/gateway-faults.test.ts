import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape } from "../helpers/prometheus.js";
import { reasonOf, startSystem } from "../helpers/system.js";

test("a hung order service costs each caller of the gateway at most its budget; after five, the gateway's breaker answers 503 at once, reads go on, and it closes once the service is back", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/GW-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  // A budget well over the breaker's 1 s slow-call bound, so a stall before a call cannot excuse its timeout.
  const order = { body: { customerId: "gail", items: [{ sku: "GW-1", quantity: 1 }] }, headers: { "x-request-timeout": "2500" } };
  const before = await system.api("POST", "/v1/orders", order);
  expect(before.status).toBe(200);
  await waitFor(async () => (await system.api("GET", `/v1/orders/${before.body.id}?minVersion=${before.body.version}`)).status === 200, "the order in the read model");

  system.order.child.kill("SIGSTOP");
  const answers: { status: number; reason?: string; ms: number; retryAfter: string | null }[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const started = performance.now();
      const r = await system.api("POST", "/v1/orders", order);
      answers.push({ status: r.status, reason: reasonOf(r.body), ms: performance.now() - started, retryAfter: r.headers.get("retry-after") });
    }
    // The order service's reads are not the query's: an order is still read.
    expect((await system.api("GET", `/v1/orders/${before.body.id}`)).status).toBe(200);
  } finally {
    system.order.child.kill("SIGCONT");
  }
  console.log(`[figures] gateway → hung order service: ${answers.map((a) => `${a.status} ${Math.round(a.ms)} ms`).join(", ")}`);
  // Each waited at most its budget (and room for a loaded machine); none waited past it.
  expect(answers.every((a) => a.ms < 3500)).toBe(true);
  const timedOut = answers.filter((a) => a.status === 504);
  const refused = answers.filter((a) => a.status === 503);
  expect(timedOut.every((a) => a.reason === "DEADLINE_EXCEEDED")).toBe(true);
  expect(timedOut.length).toBeLessThanOrEqual(5);
  expect(timedOut.length + refused.length).toBe(8);
  // Once open, refused without waiting, and told when to come back.
  expect(refused.length).toBeGreaterThanOrEqual(3);
  expect(refused.every((a) => a.reason === "CIRCUIT_OPEN" && Number(a.retryAfter) >= 1)).toBe(true);
  expect(Math.max(...refused.map((a) => a.ms))).toBeLessThan(500);

  // Back: the breaker lets a call try after its half-open time, and closes on its success.
  const after = await waitFor(async () => {
    const r = await system.api("POST", "/v1/orders", order);
    return r.status === 200 ? r : undefined;
  }, "an order placed again", 15_000, 250);
  expect(after.body.status).toBe("ORDER_STATUS_CONFIRMED");
});

test("a gateway at its limit of requests in flight answers more at once with 503 OVERLOADED and Retry-After, keeps answering its health, and serves again once they end", async () => {
  await using system = await startSystem({ GATEWAY_MAX_IN_FLIGHT: "4" });
  await system.api("POST", "/v1/inventory/GW-2:restock", { body: { quantity: 10, unitPriceMinor: "100" } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "gail", items: [{ sku: "GW-2", quantity: 1 }] } });
  expect(created.status).toBe(200);
  // Four reads waiting for a version that does not come hold the four places.
  const waiting = Array.from({ length: 4 }, () => system.api("GET", `/v1/orders/${created.body.id}?minVersion=99`, { headers: { "x-request-timeout": "4000" } }));
  await waitFor(async () => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_in_flight_requests") === 4, "four requests in flight");
  const shed = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const started = performance.now();
      const r = await system.api("GET", "/v1/inventory/GW-2");
      return { status: r.status, reason: reasonOf(r.body), retryAfter: r.headers.get("retry-after"), ms: performance.now() - started };
    }),
  );
  expect(shed.map((r) => [r.status, r.reason, r.retryAfter])).toEqual(Array(6).fill([503, "OVERLOADED", "1"]));
  expect(Math.max(...shed.map((r) => r.ms))).toBeLessThan(1000);
  expect((await fetch(`${system.baseUrl}/healthz`)).status).toBe(200);
  expect((await Promise.all(waiting)).map((r) => r.status)).toEqual(Array(4).fill(504));
  expect((await system.api("GET", "/v1/inventory/GW-2")).status).toBe(200);
});

test("while the gateway's breaker for a hung order service is open, no create is its probe however long its budget: the gateway probes the service's health itself, for at most 2 s, every create is refused at once meanwhile, and the breaker closes once the service answers", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/PR-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  const order = (ms: number) => ({ body: { customerId: "gail", items: [{ sku: "PR-1", quantity: 1 }] }, headers: { "x-request-timeout": String(ms) } });
  expect((await system.api("POST", "/v1/orders", order(2000))).status).toBe(200);
  const breakerIs = async (state: string) =>
    sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_dependency_breaker_state", { dependency: "order", state }) === 1;
  const create = async (ms: number) => {
    const started = performance.now();
    const r = await system.api("POST", "/v1/orders", order(ms));
    return { status: r.status, reason: reasonOf(r.body), ms: Math.round(performance.now() - started) };
  };
  system.order.child.kill("SIGSTOP");
  const answers: Awaited<ReturnType<typeof create>>[] = [];
  try {
    await Promise.all(Array.from({ length: 6 }, () => system.api("POST", "/v1/orders", order(1500))));
    await waitFor(() => breakerIs("open"), "the breaker open");
    // Creates with a 20 s budget while it is open, until the gateway's own probe is out (5 s after it opened); then more beside it.
    await waitFor(
      async () => {
        answers.push(await create(20_000));
        if (!(await breakerIs("half-open"))) return false;
        answers.push(...(await Promise.all(Array.from({ length: 4 }, () => create(20_000)))));
        return true;
      },
      "the gateway's probe of the hung order service",
      15_000,
      250,
    );
  } finally {
    system.order.child.kill("SIGCONT");
  }
  console.log(`[figures] creates with a 20 s budget while the breaker was open or probing: ${answers.map((a) => `${a.status} ${a.reason} ${a.ms} ms`).join(", ")}`);
  // Before, the first after the half-open time became the probe and hung for its 20 s, and the others were refused meanwhile.
  for (const a of answers) expect({ ...a, ms: a.ms < 1500 }).toEqual({ status: 503, reason: "CIRCUIT_OPEN", ms: true });
  const after = await waitFor(async () => {
    const r = await system.api("POST", "/v1/orders", order(2000));
    return r.status === 200 ? r : undefined;
  }, "an order placed once the order service answers its probe", 15_000, 250);
  expect(after.body.status).toBe("ORDER_STATUS_CONFIRMED");
});
