import type { Counter, Histogram } from "prom-client";

/** A route's (or RPC's) recent traffic. */
export interface RouteSummary {
  /** The route template or full method name. */
  name: string;
  /** Requests per second over the window. */
  rate: number;
  /** Requests per second that failed on the server's side (HTTP 5xx; gRPC INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, …). */
  errorRate: number;
  /** Median and 99th-percentile duration over the window (ms), estimated from the histogram's buckets; null with no request in it. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Requests since the process started. */
  total: number;
}

interface Snapshot {
  at: number;
  /** By label value: request count, error count, and cumulative bucket counts (ordered by bound). */
  series: Map<string, { count: number; errors: number; buckets: number[] }>;
}

/**
 * Estimates a quantile from cumulative bucket counts, interpolating inside
 * the bucket it falls in (as Prometheus's histogram_quantile does).
 */
export function quantileFromBuckets(bounds: readonly number[], cumulative: readonly number[], q: number): number {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (total === 0) return 0;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (cumulative[i]! >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const below = i === 0 ? 0 : cumulative[i - 1]!;
      const inBucket = cumulative[i]! - below;
      const upper = bounds[i]!;
      if (!Number.isFinite(upper)) return lower;
      return inBucket === 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
    }
  }
  return bounds[bounds.length - 2] ?? 0;
}

/** The traffic of every route over the span a report covers. */
export interface WindowSummary {
  /** The span the rates and quantiles cover (s): back to the previous report at least a second old, at most about `windowMs` unless reports are further apart; the first report's, back to when the counters started (0 within a second of it). */
  windowSeconds: number;
  /** Every route seen, busiest first. */
  routes: RouteSummary[];
}

/**
 * Request rate, error rate and latency quantiles per label value over a
 * sliding window, read from a counter (with a status label) and a duration
 * histogram that the hot path already updates — so this costs nothing per
 * request, only per read (the status page polls every 2 s). Each read keeps
 * a snapshot; the window is the span back to the latest snapshot at least
 * `windowMs` old, or the oldest kept: after a pause in the reads it reaches
 * back to the read before the pause, and says how far. Before the first
 * read, the oldest is the counters' start, when every count was zero (by
 * default the process's, as its metrics count from it): the first read
 * has rates too.
 */
export class RequestWindow {
  private readonly snapshots: Snapshot[];

  constructor(
    private readonly requests: Counter<string>,
    private readonly duration: Histogram<string>,
    private readonly label: string,
    private readonly codeLabel: string,
    private readonly isError: (code: string) => boolean,
    private readonly windowMs = 30_000,
    countingSince = performance.timeOrigin,
  ) {
    this.snapshots = [{ at: countingSince, series: new Map() }];
  }

  /** The summary of every route seen, and the span it covers. */
  async summarize(now = Date.now()): Promise<WindowSummary> {
    const current = await this.snapshot(now);
    while (this.snapshots.length > 1 && now - this.snapshots[1]!.at >= this.windowMs) this.snapshots.shift();
    const base = this.snapshots.find((s) => now - s.at >= 1000);
    this.snapshots.push(current);
    const seconds = base ? (now - base.at) / 1000 : 0;
    const summaries: RouteSummary[] = [];
    for (const [name, series] of current.series) {
      const before = base?.series.get(name);
      const count = series.count - (before?.count ?? 0);
      const errors = series.errors - (before?.errors ?? 0);
      const buckets = series.buckets.map((n, i) => n - (before?.buckets[i] ?? 0));
      const bounds = this.bounds;
      summaries.push({
        name,
        rate: seconds > 0 ? count / seconds : 0,
        errorRate: seconds > 0 ? errors / seconds : 0,
        p50Ms: count > 0 ? quantileFromBuckets(bounds, buckets, 0.5) * 1000 : null,
        p99Ms: count > 0 ? quantileFromBuckets(bounds, buckets, 0.99) * 1000 : null,
        total: series.count,
      });
    }
    return { windowSeconds: Math.round(seconds * 10) / 10, routes: summaries.sort((a, b) => b.rate - a.rate || b.total - a.total || a.name.localeCompare(b.name)) };
  }

  private bounds: number[] = [];

  private async snapshot(at: number): Promise<Snapshot> {
    const series = new Map<string, { count: number; errors: number; buckets: number[] }>();
    const entry = (name: string) => {
      let s = series.get(name);
      if (s === undefined) {
        s = { count: 0, errors: 0, buckets: [] };
        series.set(name, s);
      }
      return s;
    };
    for (const value of (await this.requests.get()).values) {
      const name = String(value.labels[this.label]);
      const s = entry(name);
      s.count += value.value;
      if (this.isError(String(value.labels[this.codeLabel]))) s.errors += value.value;
    }
    const bucketsByName = new Map<string, [number, number][]>();
    for (const value of (await this.duration.get()).values) {
      if (!value.metricName?.endsWith("_bucket")) continue;
      const name = String(value.labels[this.label]);
      const le = value.labels.le === "+Inf" ? Infinity : Number(value.labels.le);
      let list = bucketsByName.get(name);
      if (list === undefined) bucketsByName.set(name, (list = []));
      list.push([le, value.value]);
    }
    for (const [name, list] of bucketsByName) {
      list.sort((a, b) => a[0] - b[0]);
      this.bounds = list.map(([le]) => le);
      entry(name).buckets = list.map(([, n]) => n);
    }
    return { at, series };
  }
}
