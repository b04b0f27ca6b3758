import { Counter, Histogram, Registry } from "prom-client";
import { expect, test } from "vitest";
import { latencyBuckets } from "../shared/observability/index.js";
import { GatewayMetrics } from "./metrics.js";
import { ReadCache } from "./read-cache.js";

/** The lines of a scrape that belong to `prefix`. */
function linesOf(text: string, prefix: string): string[] {
  return text.split("\n").filter((line) => line.includes(prefix));
}

test("the request metrics, counted by hand, are exposed exactly as prom-client's own counter and histogram would expose them", async () => {
  const metrics = new GatewayMetrics({});
  const reference = new Registry();
  const requests = new Counter({ name: "orderly_gateway_requests_total", help: "HTTP requests by route template and status code", labelNames: ["route", "code"], registers: [reference] });
  const duration = new Histogram({ name: "orderly_gateway_request_duration_seconds", help: "HTTP request duration by route template", labelNames: ["route"], buckets: latencyBuckets, registers: [reference] });
  // On a bound, just past one, beyond the last, and a route with two codes.
  const observed: [string, number, number][] = [
    ["GET /v1/orders/{id}", 200, 0.0005],
    ["GET /v1/orders/{id}", 200, 0.00051],
    ["GET /v1/orders/{id}", 404, 0.003],
    ["POST /v1/orders", 200, 0.02],
    ["POST /v1/orders", 503, 12],
  ];
  for (const [route, code, seconds] of observed) {
    metrics.observe(route, code, seconds);
    requests.inc({ route, code: String(code) });
    duration.observe({ route }, seconds);
  }
  const ours = await metrics.registry.metrics();
  const theirs = await reference.metrics();
  for (const prefix of ["orderly_gateway_requests_total", "orderly_gateway_request_duration_seconds"]) {
    expect(linesOf(ours, prefix)).toEqual(linesOf(theirs, prefix));
  }
  expect(linesOf(ours, 'orderly_gateway_request_duration_seconds_count{route="POST /v1/orders"}')).toEqual(['orderly_gateway_request_duration_seconds_count{route="POST /v1/orders"} 2']);
  // The JSON form (what the gateway's /status reads) agrees too, but for prom-client's empty exemplars.
  const valuesOf = async (histogram: Histogram<"route">) => (await histogram.get()).values.map(({ labels, value, metricName }) => ({ labels, value, metricName }));
  expect(await valuesOf(metrics.duration)).toEqual(await valuesOf(duration));
});

test("the cache entries gauge counts live entries: those expired since the last write are not counted (and are dropped)", async () => {
  let now = 0;
  const cache = new ReadCache(1000, { clock: () => now });
  const metrics = new GatewayMetrics({ cache });
  const entries = async () => (await metrics.registry.metrics()).split("\n").find((line) => line.startsWith("orderly_gateway_cache_entries "));
  cache.set("a", "ord_1", "{}", 1, cache.generation());
  now = 500;
  cache.set("b", "ord_2", "{}", 1, cache.generation());
  expect(await entries()).toBe("orderly_gateway_cache_entries 2");
  now = 1000;
  expect(await entries()).toBe("orderly_gateway_cache_entries 1");
  now = 1500;
  expect(await entries()).toBe("orderly_gateway_cache_entries 0");
});
