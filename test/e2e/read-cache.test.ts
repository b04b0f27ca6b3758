import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape } from "../helpers/prometheus.js";
import { api, startSystem, type ApiResponse } from "../helpers/system.js";

function metric(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? NaN : Number(line.split(" ")[1]);
}

test("the gateway caches order reads, drops them when the order changes, and never serves an older version than a client asks for", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  await system.api("POST", "/v1/inventory/CACHE-1:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "cat", items: [{ sku: "CACHE-1", quantity: 1 }] } });
  const first = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
  expect(first.headers.get("x-cache")).toBeNull();
  // A fill that overlapped the order's own events is not kept; once they are in, the next read is cached.
  const second = await waitFor(async () => {
    const r = await system.api("GET", `/v1/orders/${created.body.id}`);
    return r.headers.get("x-cache") === "hit" ? r : undefined;
  }, "a cached read");
  expect(second.body).toEqual(first.body);
  // A hit skips transcoding only for the bare path; anything more is checked as the service would check it.
  const unknown = await system.api("GET", `/v1/orders/${created.body.id}?colour=red`);
  expect([unknown.status, unknown.body.details?.[0]?.reason]).toEqual([400, "INVALID_FIELD"]);
  const badVersion = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=-1`);
  expect(badVersion.status).toBe(400);
  // The version a client has seen holds however the query names it: a newer one than cached is never a hit.
  for (const name of ["minVersion", "min_version"]) {
    // (A budget long enough that the query service's answer, a tenth of it early, comes before the gateway's deadline.)
    const newer = await system.api("GET", `/v1/orders/${created.body.id}?${name}=${Number(created.body.version) + 1}`, { headers: { "x-request-timeout": "1500" } });
    expect([newer.status, newer.headers.get("x-cache"), newer.body.details?.[0]?.reason]).toEqual([504, null, "VERSION_NOT_REACHED"]);
  }
  const stranger = await system.api("GET", `/v1/orders/${created.body.id}`, { as: "bob" });
  expect([stranger.status, stranger.headers.get("x-cache")]).toEqual([404, null]);

  const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
  const after = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${cancelled.body.version}`);
  expect(after.body.status).toBe("ORDER_STATUS_CANCELLED");
  const again = await system.api("GET", `/v1/orders/${created.body.id}`);
  expect(again.body.status).toBe("ORDER_STATUS_CANCELLED");

  const metrics = await api(system.adminUrl, "GET", "/metrics");
  expect(metrics.status).toBe(200);
  expect(metric(metrics.text, "orderly_gateway_cache_lookups_total", '{result="hit"}')).toBeGreaterThanOrEqual(1);
  expect(metric(metrics.text, "orderly_gateway_cache_hit_ratio")).toBeGreaterThan(0);
  expect(metric(metrics.text, "orderly_gateway_cache_live")).toBe(1);
  expect(metrics.text).toContain('orderly_gateway_requests_total{route="POST /v1/orders",code="200"} 1');

  // An order's write through the gateway drops the cached stock of its SKUs too (it reserved or released them), at once:
  // with NATS frozen, no event will (the gateway does not notice a frozen server for a while, so its entries keep their TTL).
  await waitFor(async () => (await system.api("GET", "/v1/stock/CACHE-1")).headers.get("x-cache") === "hit", "a cached stock read");
  system.nats.child().kill("SIGSTOP");
  try {
    const ordered = await system.api("POST", "/v1/orders", { body: { customerId: "cat", items: [{ sku: "CACHE-1", quantity: 1 }] } });
    expect(ordered.status).toBe(200);
    expect((await system.api("GET", "/v1/stock/CACHE-1")).headers.get("x-cache")).toBeNull();
  } finally {
    system.nats.child().kill("SIGCONT");
  }
});

test("reads that miss while the same order is being fetched wait for that fetch: the query service answers once for all of them", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  await system.api("POST", "/v1/inventory/CACHE-2:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "CACHE-2", quantity: 1 }] } });
  const served = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`);
  expect(served.status).toBe(200);
  // The admin's reads fill the admins' entry; the customer's own reads below have an entry of their own, still empty.
  const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${cancelled.body.version}`)).status === 200, "the cancel in the read model");
  const getOrder = { method: "orderly.query.v1.QueryService/GetOrder", code: "OK" };
  const queryMetrics = `http://127.0.0.1:${system.query.adminPort}/metrics`;
  const callsBefore = sampleValue(await scrape(queryMetrics), "orderly_rpc_server_requests_total", getOrder);
  const lookups = async () => {
    const samples = await scrape(`${system.adminUrl}/metrics`);
    return { miss: sampleValue(samples, "orderly_gateway_cache_lookups_total", { result: "miss" }), shared: sampleValue(samples, "orderly_gateway_cache_lookups_total", { result: "shared" }) };
  };
  const lookupsBefore = await lookups();

  // The query service is paused, so the first read's call cannot finish while the others arrive.
  system.query.child.kill("SIGSTOP");
  let reads: Promise<ApiResponse>[] = [];
  try {
    reads = Array.from({ length: 12 }, () => system.api("GET", `/v1/orders/${created.body.id}`, { as: "alice" }));
    await waitFor(async () => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_in_flight_requests") === 12, "all 12 reads in the gateway");
  } finally {
    system.query.child.kill("SIGCONT");
  }
  const answers = await Promise.all(reads);
  expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
  for (const a of answers) expect(a.body).toEqual(answers[0]!.body);
  expect(answers[0]!.body.status).toBe("ORDER_STATUS_CANCELLED");
  expect(answers.map((a) => a.headers.get("x-cache")).sort()).toEqual([null, ...Array(11).fill("shared")]);
  const callsAfter = sampleValue(await scrape(queryMetrics), "orderly_rpc_server_requests_total", getOrder);
  expect(callsAfter - callsBefore).toBe(1);
  // The metrics say the same: one lookup missed and fetched, eleven waited for its fetch.
  const lookupsAfter = await lookups();
  expect({ miss: lookupsAfter.miss - lookupsBefore.miss, shared: lookupsAfter.shared - lookupsBefore.shared }).toEqual({ miss: 1, shared: 11 });
});

test("an order read all the time never expires from the cache: hits near the end of the TTL refresh it in the background", async () => {
  // A hit in an entry's last fifth (800 ms here) refreshes it: room for a loaded machine's stalls between two reads.
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "4000" });
  await system.api("POST", "/v1/inventory/CACHE-3:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "CACHE-3", quantity: 1 }] } });
  const getOrder = { method: "orderly.query.v1.QueryService/GetOrder", code: "OK" };
  const queryMetrics = `http://127.0.0.1:${system.query.adminPort}/metrics`;
  // Once the read model has the order, the gateway has its events too (it hears them as they are published), so none drops the entry below.
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`)).status === 200, "the order in the read model");
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}`)).headers.get("x-cache") === "hit", "a cached read");
  const callsBefore = sampleValue(await scrape(queryMetrics), "orderly_rpc_server_requests_total", getOrder);
  // Reads one after another for over two TTLs: none of them waits for a call of its own.
  const seen: (string | null)[] = [];
  for (const until = Date.now() + 10_000; Date.now() < until; ) {
    const r = await system.api("GET", `/v1/orders/${created.body.id}`);
    expect(r.status).toBe(200);
    seen.push(r.headers.get("x-cache"));
  }
  expect(seen.filter((how) => how !== "hit" && how !== "shared")).toEqual([]);
  // The entry was fetched again in the background, about once per TTL.
  const refreshes = sampleValue(await scrape(queryMetrics), "orderly_rpc_server_requests_total", getOrder) - callsBefore;
  expect(refreshes).toBeGreaterThanOrEqual(2);
  expect(refreshes).toBeLessThanOrEqual(5);
});

test("a read waiting for another's fetch still ends at its own deadline, and is not ended by that fetch's shorter one", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  await system.api("POST", "/v1/inventory/CACHE-4:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "bob", items: [{ sku: "CACHE-4", quantity: 1 }] } });
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`)).status === 200, "the order in the read model");

  const queryCalls = async () => {
    const samples = await scrape(`${system.adminUrl}/metrics`);
    return samples.filter((x) => x.name === "orderly_dependency_calls_total" && x.labels.dependency === "query").reduce((sum, x) => sum + x.value, 0);
  };
  const callsBefore = await queryCalls();
  system.query.child.kill("SIGSTOP");
  try {
    // The first read fetches with a long budget; the others join it with short ones (bob's own entry is still empty).
    const first = system.api("GET", `/v1/orders/${created.body.id}`, { as: "bob", headers: { "x-request-timeout": "20000" } });
    await waitFor(async () => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_in_flight_requests") === 1, "the first read in the gateway");
    const started = Date.now();
    const joined = await Promise.all(
      Array.from({ length: 4 }, () => system.api("GET", `/v1/orders/${created.body.id}`, { as: "bob", headers: { "x-request-timeout": "300" } })),
    );
    const waited = Date.now() - started;
    expect(joined.map((r) => [r.status, r.body.details?.[0]?.reason])).toEqual(Array(4).fill([504, "DEADLINE_EXCEEDED"]));
    // Their 300 ms, not the first read's 20 s (the bound is loose for a slow machine).
    expect(waited).toBeLessThan(5000);
    system.query.child.kill("SIGCONT");
    const answered = await first;
    expect([answered.status, answered.body.id]).toEqual([200, created.body.id]);
    // One call for all five reads: the four that gave up had joined the first one's.
    expect((await queryCalls()) - callsBefore).toBe(1);

    // The other way round, on another order whose entry for bob is empty: a read that joins a fetch begun with a shorter
    // budget than its own is not failed by that fetch's end. The fetch runs out after the default 5 s; the joiner fetches
    // again within its 20.
    const other = await system.api("POST", "/v1/orders", { body: { customerId: "bob", items: [{ sku: "CACHE-4", quantity: 1 }] } });
    await waitFor(async () => (await system.api("GET", `/v1/orders/${other.body.id}?minVersion=${other.body.version}`)).status === 200, "the other order in the read model");
    const queryErrors = async () => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_dependency_calls_total", { dependency: "query", outcome: "error" }) ?? 0;
    const errorsBefore = await queryErrors().catch(() => 0);
    system.query.child.kill("SIGSTOP");
    const short = system.api("GET", `/v1/orders/${other.body.id}`, { as: "bob", headers: { "x-request-timeout": "2000" } });
    await waitFor(async () => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_in_flight_requests") === 1, "the short read in the gateway");
    const patient = system.api("GET", `/v1/orders/${other.body.id}`, { as: "bob", headers: { "x-request-timeout": "20000" } });
    expect((await short).status).toBe(504);
    await waitFor(async () => (await queryErrors().catch(() => 0)) > errorsBefore, "the shared fetch to run out of its budget", 15_000, 100);
    system.query.child.kill("SIGCONT");
    const waitedOut = await patient;
    expect([waitedOut.status, waitedOut.body.id]).toEqual([200, other.body.id]);
  } finally {
    system.query.child.kill("SIGCONT");
  }
});
