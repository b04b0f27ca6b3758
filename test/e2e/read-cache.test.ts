import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";

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
    const newer = await system.api("GET", `/v1/orders/${created.body.id}?${name}=${Number(created.body.version) + 1}`, { headers: { "x-request-timeout": "300" } });
    expect([newer.status, newer.headers.get("x-cache"), newer.body.details?.[0]?.reason]).toEqual([504, null, "DEADLINE_EXCEEDED"]);
  }
  const stranger = await system.api("GET", `/v1/orders/${created.body.id}`, { as: "bob" });
  expect([stranger.status, stranger.headers.get("x-cache")]).toEqual([404, null]);

  const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
  const after = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${cancelled.body.version}`);
  expect(after.body.status).toBe("ORDER_STATUS_CANCELLED");
  const again = await system.api("GET", `/v1/orders/${created.body.id}`);
  expect(again.body.status).toBe("ORDER_STATUS_CANCELLED");

  const metrics = await system.api("GET", "/metrics");
  expect(metrics.status).toBe(200);
  expect(metric(metrics.text, "orderly_gateway_cache_lookups_total", '{result="hit"}')).toBeGreaterThanOrEqual(1);
  expect(metric(metrics.text, "orderly_gateway_cache_hit_ratio")).toBeGreaterThan(0);
  expect(metrics.text).toContain('orderly_gateway_requests_total{route="POST /v1/orders",code="200"} 1');
});
