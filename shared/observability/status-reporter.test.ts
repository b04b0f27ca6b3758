import { Counter, Histogram, Registry } from "prom-client";
import { afterEach, expect, test, vi } from "vitest";
import { OrderlyError } from "../errors/index.js";
import { HealthState } from "../grpc/index.js";
import { DependencyPolicy } from "../resilience/index.js";
import { EventLoopLag } from "./event-loop-lag.js";
import { RequestWindow } from "./request-window.js";
import { statusReporter } from "./status-reporter.js";

afterEach(() => vi.useRealTimers());

test("a dependency's calls and failures are counted over the span the requests' figures cover, not since the start", async () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  const registry = new Registry();
  const requests = new Counter({ name: "r_total", help: "r", labelNames: ["route", "code"], registers: [registry] });
  const duration = new Histogram({ name: "d_seconds", help: "d", labelNames: ["route"], registers: [registry] });
  const inventory = new DependencyPolicy({ name: "inventory", maxAttempts: 1, halfOpenAfterMs: 60_000, probe: async () => undefined });
  const lag = new EventLoopLag();
  const report = statusReporter({
    name: "order",
    health: new HealthState({ database: () => true }),
    requests: new RequestWindow(requests, duration, "route", "code", (code) => Number(code) >= 500),
    lag,
    policies: [inventory],
  });
  const succeed = () => inventory.execute(false, async () => "ok");
  const fail = () => expect(inventory.execute(false, () => Promise.reject(new OrderlyError("INTERNAL", "boom")))).rejects.toThrow("boom");
  try {
    vi.setSystemTime(performance.timeOrigin + 5_000);
    await succeed();
    await succeed();
    await fail();
    // The first report covers the process's life so far.
    const first = await report();
    expect(first.windowSeconds).toBe(5);
    expect(first.dependencies).toEqual([expect.objectContaining({ name: "inventory", breaker: "closed", calls: 3, failures: 1, retries: 0 })]);

    await succeed();
    await fail();
    // 31 s on, the start has left the window: the report covers the calls since the first.
    vi.setSystemTime(performance.timeOrigin + 36_000);
    const later = await report();
    expect(later.windowSeconds).toBe(31);
    expect(later.dependencies).toEqual([expect.objectContaining({ calls: 2, failures: 1 })]);
    // And then, nothing: no calls in the last 30 s.
    vi.setSystemTime(performance.timeOrigin + 70_000);
    expect((await report()).dependencies).toEqual([expect.objectContaining({ calls: 0, failures: 0 })]);
  } finally {
    lag.close();
    inventory.close();
  }
});
