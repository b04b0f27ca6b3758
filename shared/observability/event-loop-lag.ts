import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

/**
 * How often a process samples its event loop's delay (ms): here, and in
 * prom-client's nodejs_eventloop_lag_* metrics (`eventLoopMonitoringPrecision`).
 * Each sample is a timer that wakes the process. At prom-client's default of
 * 10 ms an idle service woke ~100 times a second; at 50 ms ~25 times, and an
 * idle stack of the four services used 20–31 ms of CPU a second instead of
 * 31–38 (alternating 30 s runs). A stall longer than the period always
 * delays the next sample; a shorter one is caught in proportion to its length.
 */
export const EVENT_LOOP_SAMPLE_MS = 50;

/** Samples event-loop delay; each read gives the p99 since the previous read. */
export class EventLoopLag {
  private readonly histogram: IntervalHistogram;

  constructor() {
    this.histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
    this.histogram.enable();
  }

  /**
   * The p99 event-loop delay (ms) since the last read, and starts a new window.
   * Node's histogram records the whole time between two samples, the sampling
   * period included (an idle loop reads 50 ms): the delay is what lies beyond it.
   */
  read(): number {
    const p99 = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
    this.histogram.reset();
    return Math.max(0, p99 - EVENT_LOOP_SAMPLE_MS);
  }

  /** Stops sampling. */
  close(): void {
    this.histogram.disable();
  }
}
