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

/** By label value: request count, error count, and cumulative bucket counts (ordered by bound). */
type Series = Map<string, { count: number; errors: number; buckets: number[] }>;

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
 * Readings of counters taken at each report, kept so that a report can be
 * told over a sliding window: the span back to the latest reading at least
 * `windowMs` old, or the oldest kept, and never less than a second. After a
 * pause in the reports it reaches back to the report before the pause, and
 * says how far. Before the first report, the oldest is the counters' start,
 * when every count was zero (`zero`).
 */
class ReadingWindow<T> {
  private readonly readings: { at: number; value: T }[];

  constructor(
    zero: { at: number; value: T },
    private readonly windowMs = 30_000,
  ) {
    this.readings = [zero];
  }

  /** Keeps `value`, read at `now`, and returns the reading to take the difference from (undefined within a second of the oldest) and the span (s). */
  next(now: number, value: T): { base: T | undefined; seconds: number } {
    while (this.readings.length > 1 && now - this.readings[1]!.at >= this.windowMs) this.readings.shift();
    const base = this.readings.find((r) => now - r.at >= 1000);
    this.readings.push({ at: now, value });
    return { base: base?.value, seconds: base ? (now - base.at) / 1000 : 0 };
  }
}

/**
 * Request rate, error rate and latency quantiles per label value over a
 * sliding window, read from a counter (with a status label) and a duration
 * histogram that the hot path already updates — so this costs nothing per
 * request, only per read (the status page polls every 2 s), over a
 * ReadingWindow whose counters start with the process's (`countingSince`),
 * as its metrics count from it: the first read has rates too.
 */
export class RequestWindow {
  /** Each read's series, and the counts read alongside it (see summarize). */
  private readonly readings: ReadingWindow<{ series: Series; alongside: unknown }>;

  constructor(
    private readonly requests: Counter<string>,
    private readonly duration: Histogram<string>,
    private readonly label: string,
    private readonly codeLabel: string,
    private readonly isError: (code: string) => boolean,
    windowMs = 30_000,
    countingSince = performance.timeOrigin,
  ) {
    this.readings = new ReadingWindow({ at: countingSince, value: { series: new Map(), alongside: undefined } }, windowMs);
  }

  /**
   * The summary of every route seen, and the span it covers; and of other counts read at this moment (`alongside`: a
   * process's calls to its dependencies, say), those read at the span's start (`before`; undefined at the counters'
   * start, when they were zero too), so that they are told over the same span.
   */
  async summarize<T = undefined>(now = Date.now(), alongside?: T): Promise<WindowSummary & { before: T | undefined }> {
    const current = await this.snapshot();
    const { base, seconds } = this.readings.next(now, { series: current, alongside });
    const summaries: RouteSummary[] = [];
    for (const [name, series] of current) {
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
    return { before: base?.alongside as T | undefined, windowSeconds: Math.round(seconds * 10) / 10, routes: summaries.sort((a, b) => b.rate - a.rate || b.total - a.total || a.name.localeCompare(b.name)) };
  }

  private bounds: number[] = [];

  private async snapshot(): Promise<Series> {
    const series: Series = new Map();
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
    return series;
  }
}
