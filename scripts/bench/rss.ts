import { rssMb, type Watched } from "./proc.js";

/** RSS samples of one process during one phase (MB). */
export interface RssSeries {
  process: string;
  phase: string;
  samples: number[];
  /** RSS at the end of each measured round of the phase (MB). */
  roundEnds: number[];
  /**
   * For a Node.js process: the lowest V8 heap in use (MB, from its /metrics) seen during each round,
   * close to what survives a garbage collection, so a leak shows as a floor that keeps rising.
   */
  heapFloors: number[];
}

/** Where a process's V8 heap in use is read: a Prometheus text endpoint and the metric's name. */
export interface HeapSource {
  url: () => string | undefined;
  metric: string;
}

/** How often the heap is read (its /metrics is scraped, so not every second). */
const HEAP_INTERVAL_MS = 3000;

/** A Prometheus text exposition's first value of `metric` (labels ignored), in MB. */
export function metricMb(text: string, metric: string): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const value = Number(rest.slice(rest.lastIndexOf(" ") + 1));
    return Number.isFinite(value) ? value / 2 ** 20 : undefined;
  }
  return undefined;
}

/**
 * Samples the RSS of every watched process once a second, tagged with the
 * current phase, and records it at the end of every round, so growth under
 * sustained load shows as RSS rising from round to round.
 */
export class RssSampler implements Disposable {
  private readonly watched: (Watched & { heap?: HeapSource })[] = [];
  private readonly series = new Map<string, RssSeries>();
  /** Per process: the lowest heap in use read since the last round end. */
  private readonly heapLow = new Map<string, number>();
  /** Changes at every round start and end: a heap reading answered after it belongs to no round. */
  private readings = 0;
  private phase = "idle";
  private readonly timer: NodeJS.Timeout;
  private readonly heapTimer: NodeJS.Timeout;

  constructor(intervalMs = 1000) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.heapTimer = setInterval(() => void this.sampleHeaps(), HEAP_INTERVAL_MS);
    this.heapTimer.unref();
  }

  /** Starts watching a process (and its V8 heap, for a Node.js process with a /metrics endpoint). */
  watch(name: string, pid: () => number | undefined, heap?: HeapSource): void {
    this.watched.push({ name, pid, heap });
  }

  /** Samples from now on belong to `phase`. */
  setPhase(phase: string): void {
    this.phase = phase;
  }

  /** A measured round starts: heap readings from before it (warm-up, the previous round's last scrape) do not count. */
  roundStarted(): void {
    this.readings++;
    this.heapLow.clear();
  }

  /** Records every process's RSS as the end of a round of the current phase. */
  roundEnded(): void {
    this.readings++;
    for (const w of this.watched) {
      const pid = w.pid();
      const mb = pid === undefined ? undefined : rssMb(pid);
      if (mb !== undefined) this.entry(w.name).roundEnds.push(mb);
      const low = this.heapLow.get(w.name);
      if (low !== undefined) this.entry(w.name).heapFloors.push(low);
      this.heapLow.delete(w.name);
    }
  }

  /** Every series recorded. */
  results(): RssSeries[] {
    return [...this.series.values()];
  }

  [Symbol.dispose](): void {
    clearInterval(this.timer);
    clearInterval(this.heapTimer);
  }

  private entry(name: string): RssSeries {
    const key = `${name}\u0000${this.phase}`;
    let s = this.series.get(key);
    if (!s) {
      s = { process: name, phase: this.phase, samples: [], roundEnds: [], heapFloors: [] };
      this.series.set(key, s);
    }
    return s;
  }

  private async sampleHeaps(): Promise<void> {
    if (this.phase === "idle") return;
    const readings = this.readings;
    await Promise.all(
      this.watched.map(async (w) => {
        const url = w.heap?.url();
        if (w.heap === undefined || url === undefined) return;
        try {
          const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
          const mb = metricMb(await response.text(), w.heap.metric);
          if (mb !== undefined && readings === this.readings) this.heapLow.set(w.name, Math.min(this.heapLow.get(w.name) ?? Infinity, mb));
        } catch {
          // Restarting or stopped (relay rounds stop some services): no reading this time.
        }
      }),
    );
  }

  private sample(): void {
    if (this.phase === "idle") return;
    for (const w of this.watched) {
      const pid = w.pid();
      const mb = pid === undefined ? undefined : rssMb(pid);
      if (mb !== undefined) this.entry(w.name).samples.push(mb);
    }
  }
}

/**
 * Whether a series looks bounded: RSS at the last round end within 5% (+5 MB) of RSS at the end of
 * the middle round (a plateau over the second half of the run; the first rounds are heap warm-up).
 * Also the first, peak and last values and the growth per round over the whole run; and whether the
 * V8 heap floors stayed level (the lowest floor of the second half of the rounds within 5% + 5 MB of
 * the lowest of the first half), when they were read.
 */
export function rssVerdict(series: RssSeries): {
  first: number;
  peak: number;
  last: number;
  perRoundMb: number;
  bounded: boolean;
  heap: { first: number; last: number; bounded: boolean } | undefined;
} {
  const ends = series.roundEnds.length ? series.roundEnds : series.samples;
  const first = ends[0] ?? NaN;
  const last = ends.at(-1) ?? NaN;
  const middle = ends[Math.floor((ends.length - 1) / 2)] ?? NaN;
  const peak = Math.max(...series.samples, ...series.roundEnds);
  const perRoundMb = ends.length > 1 ? (last - first) / (ends.length - 1) : 0;
  // Floors read every few seconds are noisy (a collection may or may not fall between two reads): compare the
  // lower envelope of the second half of the rounds with that of the first half, which a leak would lift.
  const floors = series.heapFloors;
  const half = Math.floor(floors.length / 2);
  const heap =
    floors.length < 2
      ? undefined
      : { first: floors[0]!, last: floors.at(-1)!, bounded: Math.min(...floors.slice(half)) <= Math.min(...floors.slice(0, half)) * 1.05 + 5 };
  return { first, peak, last, perRoundMb, bounded: last <= middle * 1.05 + 5, heap };
}
