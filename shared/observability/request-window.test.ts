import { Counter, Histogram, Registry } from "prom-client";
import { expect, test } from "vitest";
import { RequestWindow, quantileFromBuckets } from "./request-window.js";

test("quantiles interpolate inside the bucket they fall in, as histogram_quantile does", () => {
  const bounds = [0.01, 0.1, 1, Infinity];
  expect(quantileFromBuckets(bounds, [0, 0, 0, 0], 0.99)).toBe(0);
  expect(quantileFromBuckets(bounds, [50, 100, 100, 100], 0.5)).toBeCloseTo(0.01);
  expect(quantileFromBuckets(bounds, [50, 100, 100, 100], 0.75)).toBeCloseTo(0.055);
  expect(quantileFromBuckets(bounds, [0, 0, 0, 10], 0.99)).toBe(1);
});

test("rates and quantiles cover only the requests since the oldest report in the window", async () => {
  const registry = new Registry();
  const requests = new Counter({ name: "r_total", help: "r", labelNames: ["route", "code"], registers: [registry] });
  const duration = new Histogram({ name: "d_seconds", help: "d", labelNames: ["route"], buckets: [0.01, 0.1, 1], registers: [registry] });
  // The counters start at 0 s.
  const window = new RequestWindow(requests, duration, "route", "code", (code) => Number(code) >= 500, 30_000, 0);
  const serve = (route: string, code: string, seconds: number) => {
    requests.inc({ route, code });
    duration.observe({ route }, seconds);
  };
  for (let i = 0; i < 10; i++) serve("GET /a", "200", 0.5);
  // The first report covers the requests since the counters started.
  const first = await window.summarize(1_000);
  expect(first).toEqual({ windowSeconds: 1, routes: [{ name: "GET /a", rate: 10, errorRate: 0, p50Ms: expect.any(Number), p99Ms: expect.any(Number), total: 10 }] });
  expect(first.routes[0]!.p50Ms).toBeGreaterThan(100);

  for (let i = 0; i < 18; i++) serve("GET /a", "200", 0.005);
  serve("GET /a", "503", 0.005);
  serve("GET /a", "503", 0.005);
  // 30 s on, the window reaches back to the first report (the counters' start has left it).
  const { windowSeconds, routes: [later] } = await window.summarize(31_000);
  expect(windowSeconds).toBe(30);
  expect(later!.rate).toBeCloseTo(20 / 30); // the slow ten before the window
  expect(later!.errorRate).toBeCloseTo(2 / 30);
  expect(later!.p99Ms).toBeLessThanOrEqual(10);
  expect(later!.total).toBe(30);

  // Nothing since the report at 31 s, and the one at 1 s has left the window: no rate, no quantiles.
  const idle = await window.summarize(65_000);
  expect(idle).toMatchObject({ windowSeconds: 34, routes: [{ rate: 0, errorRate: 0, p50Ms: null, p99Ms: null, total: 30 }] });

  // Read every 2 s, the window stays within a read of windowMs; after an hour without reads, it says it covers the hour.
  for (let at = 67_000; at <= 141_000; at += 2_000) await window.summarize(at);
  expect((await window.summarize(143_000)).windowSeconds).toBe(30);
  expect((await window.summarize(143_000 + 3_600_000)).windowSeconds).toBe(3600);
});
