import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

/** Samples event-loop delay; each read gives the p99 since the previous read. */
export class EventLoopLag {
  private readonly histogram: IntervalHistogram;

  constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
  }

  /** The p99 event-loop delay (ms) since the last read, and starts a new window. */
  read(): number {
    const p99 = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
    this.histogram.reset();
    return p99;
  }

  /** Stops sampling. */
  close(): void {
    this.histogram.disable();
  }
}
