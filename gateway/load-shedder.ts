import { OrderlyError } from "../shared/errors/index.js";
import { EventLoopLag } from "../shared/observability/index.js";

/** When the gateway refuses new work. */
export interface LoadSheddingOptions {
  /** Requests in flight at once; more get 503 at once. */
  maxInFlight: number;
  /** Event-loop delay (p99 of a window, ms) above which — two windows in a row — new requests get 503. */
  maxEventLoopLagMs: number;
  /** How often the lag is sampled (ms). */
  windowMs?: number;
}

/**
 * Load shedding: a bound on requests in flight, and a stop on new work while
 * the event loop lags — a fast 503 with Retry-After instead of a queue that
 * grows until every request misses its deadline.
 */
export class LoadShedder {
  private inFlight = 0;
  private lagMs = 0;
  private lagging = false;
  private readonly lag = new EventLoopLag();
  private readonly timer: NodeJS.Timeout;
  readonly stats = { shedInFlight: 0, shedLag: 0 };

  constructor(private readonly options: LoadSheddingOptions) {
    this.timer = setInterval(() => {
      const previous = this.lagMs;
      this.lagMs = this.lag.read();
      // One slow window is a burst being parsed; two in a row is a saturated loop.
      this.lagging = previous > options.maxEventLoopLagMs && this.lagMs > options.maxEventLoopLagMs;
    }, options.windowMs ?? 500);
    this.timer.unref();
  }

  /** The p99 event-loop delay of the last window (ms). */
  get eventLoopLagMs(): number {
    return this.lagMs;
  }

  /** Requests in flight now. */
  get current(): number {
    return this.inFlight;
  }

  /** Admits a request (call the returned function when it ends), or throws OVERLOADED. */
  admit(): () => void {
    if (this.inFlight >= this.options.maxInFlight) {
      this.stats.shedInFlight++;
      throw new OrderlyError("OVERLOADED", "the gateway is at its limit of requests in flight; retry shortly");
    }
    if (this.lagging) {
      this.stats.shedLag++;
      throw new OrderlyError("OVERLOADED", "the gateway is overloaded; retry shortly");
    }
    this.inFlight++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.inFlight--;
      }
    };
  }

  /** Stops sampling. */
  close(): void {
    clearInterval(this.timer);
    this.lag.close();
  }
}
