import { rssMb, type Watched } from "./proc.js";

/** RSS samples of one process during one phase (MB). */
export interface RssSeries {
  process: string;
  phase: string;
  samples: number[];
  /** RSS at the end of each measured round of the phase (MB). */
  roundEnds: number[];
}

/**
 * Samples the RSS of every watched process once a second, tagged with the
 * current phase, and records it at the end of every round, so growth under
 * sustained load shows as RSS rising from round to round.
 */
export class RssSampler implements Disposable {
  private readonly watched: Watched[] = [];
  private readonly series = new Map<string, RssSeries>();
  private phase = "idle";
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 1000) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  /** Starts watching a process. */
  watch(name: string, pid: () => number | undefined): void {
    this.watched.push({ name, pid });
  }

  /** Samples from now on belong to `phase`. */
  setPhase(phase: string): void {
    this.phase = phase;
  }

  /** Records every process's RSS as the end of a round of the current phase. */
  roundEnded(): void {
    for (const w of this.watched) {
      const pid = w.pid();
      const mb = pid === undefined ? undefined : rssMb(pid);
      if (mb !== undefined) this.entry(w.name).roundEnds.push(mb);
    }
  }

  /** Every series recorded. */
  results(): RssSeries[] {
    return [...this.series.values()];
  }

  [Symbol.dispose](): void {
    clearInterval(this.timer);
  }

  private entry(name: string): RssSeries {
    const key = `${name}\u0000${this.phase}`;
    let s = this.series.get(key);
    if (!s) {
      s = { process: name, phase: this.phase, samples: [], roundEnds: [] };
      this.series.set(key, s);
    }
    return s;
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
 * Also the first, peak and last values and the growth per round over the whole run.
 */
export function rssVerdict(series: RssSeries): { first: number; peak: number; last: number; perRoundMb: number; bounded: boolean } {
  const ends = series.roundEnds.length ? series.roundEnds : series.samples;
  const first = ends[0] ?? NaN;
  const last = ends.at(-1) ?? NaN;
  const middle = ends[Math.floor((ends.length - 1) / 2)] ?? NaN;
  const peak = Math.max(...series.samples, ...series.roundEnds);
  const perRoundMb = ends.length > 1 ? (last - first) / (ends.length - 1) : 0;
  return { first, peak, last, perRoundMb, bounded: last <= middle * 1.05 + 5 };
}
