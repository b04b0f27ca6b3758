import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { latencyBuckets, registerDependencyMetrics } from "../shared/observability/index.js";
import type { DependencyPolicy } from "../shared/resilience/index.js";
import type { LoadShedder } from "./load-shedder.js";
import type { ReadCache } from "./read-cache.js";

/** The gateway's Prometheus metrics (served at /metrics). */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "code">;
  readonly duration: Histogram<"route">;

  constructor(sources: { cache?: ReadCache; shedder?: LoadShedder; policies?: readonly DependencyPolicy[] }) {
    collectDefaultMetrics({ register: this.registry, prefix: "orderly_gateway_" });
    registerDependencyMetrics(this.registry, () => sources.policies ?? []);
    this.requests = new Counter({
      name: "orderly_gateway_requests_total",
      help: "HTTP requests by route template and status code",
      labelNames: ["route", "code"],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: "orderly_gateway_request_duration_seconds",
      help: "HTTP request duration by route template",
      labelNames: ["route"],
      buckets: latencyBuckets,
      registers: [this.registry],
    });
    const { cache, shedder } = sources;
    if (cache) {
      new Counter({
        name: "orderly_gateway_cache_lookups_total",
        help: "Read-cache lookups by result (hit, miss, bypass for a newer minVersion)",
        labelNames: ["result"],
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc({ result: "hit" }, cache.stats.hits);
          this.inc({ result: "miss" }, cache.stats.misses);
          this.inc({ result: "bypass" }, cache.stats.bypasses);
        },
      });
      new Gauge({
        name: "orderly_gateway_cache_hit_ratio",
        help: "Read-cache hits / lookups since start",
        registers: [this.registry],
        collect() {
          this.set(cache.hitRatio());
        },
      });
      new Gauge({
        name: "orderly_gateway_cache_entries",
        help: "Responses in the read cache",
        registers: [this.registry],
        collect() {
          this.set(cache.stats.entries);
        },
      });
    }
    if (shedder) {
      new Gauge({
        name: "orderly_gateway_in_flight_requests",
        help: "API requests in flight",
        registers: [this.registry],
        collect() {
          this.set(shedder.current);
        },
      });
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

  /** Each route's and status code's series, found by two map lookups (prom-client hashes a label object per call). */
  private readonly series = new Map<string, Map<number, { count: Counter.Internal; time: Histogram.Internal<"route"> }>>();

  /** Records one finished request. */
  observe(route: string, code: number, seconds: number): void {
    let byCode = this.series.get(route);
    if (byCode === undefined) this.series.set(route, (byCode = new Map()));
    let series = byCode.get(code);
    if (series === undefined) byCode.set(code, (series = { count: this.requests.labels(route, String(code)), time: this.duration.labels(route) }));
    series.count.inc();
    series.time.observe(seconds);
  }
}
