import { Counter, Histogram, Registry, collectDefaultMetrics, type MetricValueWithName } from "prom-client";
import { EVENT_LOOP_SAMPLE_MS, latencyBuckets, readingGauge, registerDependencyMetrics } from "../shared/observability/index.js";
import type { DependencyPolicy } from "../shared/resilience/index.js";
import type { LoadShedder } from "./load-shedder.js";
import type { ReadCache } from "./read-cache.js";

/** The gateway's Prometheus metrics (served at /metrics). */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "code">;
  readonly duration: Histogram<"route">;

  constructor(sources: { cache?: ReadCache; shedder?: LoadShedder; policies?: readonly DependencyPolicy[] }) {
    collectDefaultMetrics({ register: this.registry, prefix: "orderly_gateway_", eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    registerDependencyMetrics(this.registry, sources.policies ?? []);
    const routes = this.routes;
    this.requests = new Counter({
      name: "orderly_gateway_requests_total",
      help: "HTTP requests by route template and status code",
      labelNames: ["route", "code"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [route, counts] of routes) for (const [code, n] of counts.byCode) this.inc({ route, code: String(code) }, n);
      },
    });
    this.duration = new RouteDurations(routes, {
      name: "orderly_gateway_request_duration_seconds",
      help: "HTTP request duration by route template",
      registers: [this.registry],
    });
    const { cache, shedder } = sources;
    if (cache) {
      new Counter({
        name: "orderly_gateway_cache_lookups_total",
        help: "Read-cache lookups by result (hit; miss, fetched from the query service; shared, waited for the fetch of the same read in flight; bypass, for a newer minVersion or a client's Cache-Control: no-cache)",
        labelNames: ["result"],
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc({ result: "hit" }, cache.stats.hits);
          this.inc({ result: "miss" }, cache.stats.misses);
          this.inc({ result: "shared" }, cache.stats.shared);
          this.inc({ result: "bypass" }, cache.stats.bypasses);
        },
      });
      readingGauge(this.registry, "orderly_gateway_cache_hit_ratio", "Read-cache hits / lookups since start", () => cache.hitRatio());
      readingGauge(this.registry, "orderly_gateway_cache_live", "1 while the read cache hears the events that invalidate it, 0 while it does not (cut off from NATS: entries live at most a second)", () => (cache.isLive ? 1 : 0));
      readingGauge(this.registry, "orderly_gateway_cache_entries", "Responses in the read cache", () => cache.held().entries);
      readingGauge(this.registry, "orderly_gateway_cache_bytes", "What the read cache's response bodies take (bytes, UTF-8), at most GATEWAY_CACHE_MAX_BYTES", () => cache.held().bytes);
    }
    if (shedder) {
      readingGauge(this.registry, "orderly_gateway_in_flight_requests", "API requests in flight", () => shedder.current);
      new Counter({
        name: "orderly_gateway_shed_requests_total",
        help: "Requests refused with 503 OVERLOADED, by cause",
        labelNames: ["cause"],
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc({ cause: "in_flight" }, shedder.stats.shedInFlight);
          this.inc({ cause: "event_loop_lag" }, shedder.stats.shedLag);
        },
      });
    }
  }

  /** What `observe` counted, by route (read by the two metrics when they are collected). */
  private readonly routes = new Map<string, RouteCounts>();

  /** Records one finished request. */
  observe(route: string, code: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    let counts = this.routes.get(route);
    if (counts === undefined) this.routes.set(route, (counts = { byCode: new Map(), buckets: new Array<number>(latencyBuckets.length + 1).fill(0), sum: 0, count: 0 }));
    counts.byCode.set(code, (counts.byCode.get(code) ?? 0) + 1);
    let bucket = 0;
    while (bucket < latencyBuckets.length && seconds > latencyBuckets[bucket]!) bucket++;
    counts.buckets[bucket]!++;
    counts.sum += seconds;
    counts.count++;
  }
}

/** A route's requests by status code, and how long they took: per bucket of latencyBuckets (the last: beyond them), their sum and count. */
interface RouteCounts {
  byCode: Map<number, number>;
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * The request-duration histogram, read from plain counts. Every request is
 * counted by `GatewayMetrics.observe` in a few additions; prom-client's own
 * `inc` and `observe` validate and hash the labels on every call, even on a
 * child bound to its labels, which was ~4% of a cached read's CPU.
 * prom-client still registers and serves the metric: only how its values
 * are produced is ours (`get`, and `getForPromString`, which the registry
 * prefers when it exists).
 */
class RouteDurations extends Histogram<"route"> {
  constructor(
    private readonly routes: ReadonlyMap<string, RouteCounts>,
    private readonly config: { name: string; help: string; registers: Registry[] },
  ) {
    super({ ...config, labelNames: ["route"], buckets: latencyBuckets });
  }

  override get(): ReturnType<Histogram<"route">["get"]> {
    const name = this.config.name;
    const values: MetricValueWithName<string>[] = [];
    for (const [route, counts] of this.routes) {
      let cumulative = 0;
      latencyBuckets.forEach((le, i) => {
        cumulative += counts.buckets[i]!;
        values.push({ labels: { le, route }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push(
        { labels: { le: "+Inf", route }, value: counts.count, metricName: `${name}_bucket` },
        { labels: { route }, value: counts.sum, metricName: `${name}_sum` },
        { labels: { route }, value: counts.count, metricName: `${name}_count` },
      );
    }
    // What prom-client's own histograms return: its typings want an enum for `type` and a `collect`, which they do not return.
    const metric = { name, help: this.config.help, type: "histogram", values, aggregator: "sum" };
    return Promise.resolve(metric as unknown as Awaited<ReturnType<Histogram<"route">["get"]>>);
  }

  getForPromString() {
    return this.get();
  }
}
