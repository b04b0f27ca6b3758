/**
 * The bench's chart: an SVG written beside the report and shown under its
 * summary table, in two panels. Throughput: each target's share of its ceiling (the
 * median as a bar, every round as a dot, the brief's target as a red line).
 * Latency: each target's p50, p95 and p99 at half load on a log scale (the
 * targets as red dashes).
 *
 * Written by hand: a few rectangles, circles, lines and labels. A charting
 * library would bring a renderer (and a browser or canvas to run it) into
 * the bench for that.
 */
import { roundRatios } from "./http-rounds.js";
import { relayRoundRatio } from "./relay-rounds.js";
import { GOALS, goalsOf, type BenchResults } from "./report.js";
import { fmt, pct } from "./stats.js";

/** One bar of the throughput panel. */
export interface RatioRow {
  label: string;
  /** The median share of the ceiling (what the report's ratio says). */
  ratio: number;
  /** Each round's share. */
  rounds: number[];
  /** The brief's target, when it has one. */
  goal?: number;
  /** What the share is of. */
  ceiling: string;
}

/** One row of the latency panel (ms). */
export interface LatencyRow {
  label: string;
  p50: number;
  p95: number;
  p99: number;
  /** The brief's p99 target, when it has one. */
  goal?: number;
}

/** The chart's rows, from a run's results. */
export function chartRows(results: Pick<BenchResults, "http" | "relay" | "lag">): { ratios: RatioRow[]; latencies: LatencyRow[] } {
  const byId = new Map(results.http.map((t) => [t.id, t]));
  const measured = [...byId.keys()];
  const ratios: RatioRow[] = results.http.flatMap((t) => {
    const ceiling = t.ceiling === undefined ? undefined : byId.get(t.ceiling);
    if (ceiling === undefined || t.ratio === undefined) return [];
    return [{ label: t.label, ratio: t.ratio, rounds: roundRatios(t.rounds, ceiling.id, ceiling.rounds), goal: goalsOf(t.id, measured).ratio, ceiling: ceiling.label }];
  });
  const { relay, lag } = results;
  if (relay) {
    ratios.push({
      label: "outbox relay (isolated)",
      ratio: relay.ratio,
      rounds: relay.rounds.map(relayRoundRatio),
      goal: GOALS.relayRatio,
      ceiling: "JetStream publish, 256 in flight",
    });
  }
  const latencies: LatencyRow[] = results.http.map((t) => ({ label: t.label, ...t.half, goal: goalsOf(t.id, measured).p99Ms }));
  if (lag) latencies.push({ label: "commit → read-model lag (POST at half load)", p50: lag.p50, p95: lag.p95, p99: lag.p99, goal: GOALS.lagP99Ms });
  return { ratios, latencies };
}

const WIDTH = 1200;
const LABEL_RIGHT = 400;
const PLOT_X = 410;
const PLOT_W = 400;
const VALUE_X = PLOT_X + PLOT_W + 12;
const ROW_H = 24;
const COLORS = { met: "#2e7d32", missed: "#e07b00", plain: "#7f93ab", round: "#1b1b1b", goal: "#c62828", grid: "#d6d6d6", p50: "#1565c0", p95: "#7b1fa2", p99: "#c62828" };

/** Text for SVG. */
function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const num = (value: number) => String(Math.round(value * 10) / 10);

/** The chart as an SVG document. */
export function benchChart(results: Pick<BenchResults, "http" | "relay" | "lag" | "date">): string {
  const { ratios, latencies } = chartRows(results);
  const out: string[] = [];
  let y = 30;
  out.push(`<text x="12" y="${y}" class="title">${esc(`Orderly bench — ${results.date}`)}</text>`);

  // Throughput: share of the ceiling, linear from 0 to 100% (further when a share is above it).
  y += 34;
  out.push(`<text x="12" y="${y}" class="heading">Throughput at saturation: share of its ceiling (bar: median; dots: each round; red line: target)</text>`);
  y += 14;
  const shares = ratios.flatMap((r) => [r.ratio, ...r.rounds]).filter(Number.isFinite);
  const maxShare = Math.max(1, Math.ceil(Math.max(0, ...shares) * 4) / 4);
  const xShare = (share: number) => PLOT_X + (Math.max(0, share) / maxShare) * PLOT_W;
  const shareTicks = Array.from({ length: Math.round(maxShare * 4) + 1 }, (_, k) => k / 4);
  out.push(axis(shareTicks.map((share) => ({ x: xShare(share), label: pct(share) })), y, y + ratios.length * ROW_H));
  for (const r of ratios) {
    const mid = y + ROW_H / 2;
    const verdict = r.goal === undefined ? "plain" : r.ratio >= r.goal ? "met" : "missed";
    const rounds = r.rounds.filter(Number.isFinite);
    out.push(`<text x="${LABEL_RIGHT}" y="${num(mid + 4)}" class="label">${esc(r.label)}</text>`);
    if (Number.isFinite(r.ratio)) {
      const title = `${r.label}: ${pct(r.ratio)} of ${r.ceiling}` + (rounds.length ? ` (rounds: ${rounds.map(pct).join(", ")})` : "");
      out.push(`<rect class="bar" x="${PLOT_X}" y="${num(y + 5)}" width="${num(xShare(r.ratio) - PLOT_X)}" height="14" fill="${COLORS[verdict]}"><title>${esc(title)}</title></rect>`);
    }
    for (const share of rounds) out.push(`<circle class="round" cx="${num(xShare(share))}" cy="${num(mid)}" r="3" fill="${COLORS.round}" fill-opacity="0.7"/>`);
    if (r.goal !== undefined) out.push(`<line class="goal" x1="${num(xShare(r.goal))}" x2="${num(xShare(r.goal))}" y1="${y + 1}" y2="${y + ROW_H - 1}" stroke="${COLORS.goal}" stroke-width="2"/>`);
    const value = `${pct(r.ratio)} of ${r.ceiling}` + (r.goal === undefined ? "" : ` (target ≥ ${pct(r.goal)})`);
    out.push(`<text x="${VALUE_X}" y="${num(mid + 4)}" class="value">${esc(value)}</text>`);
    y += ROW_H;
  }
  y += 22;

  // Latency at half load: log scale over whole decades, from 1 ms (or the decade below a smaller figure) to 10 ms (or the decade above a larger one, targets included).
  y += 30;
  out.push(`<text x="12" y="${y}" class="heading">Latency at half of each one's saturation rate, ms (log scale; red dash: target p99)</text>`);
  y += 8;
  out.push(legend(y));
  y += 16;
  const values = latencies.flatMap((l) => [l.p50, l.p95, l.p99, ...(l.goal === undefined ? [] : [l.goal])]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(1, ...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(10, ...values)));
  const xMs = (ms: number) => PLOT_X + ((Math.log10(Math.min(hi, Math.max(lo, ms))) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_W;
  const decades = Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, k) => lo * 10 ** k);
  out.push(axis(decades.map((ms) => ({ x: xMs(ms), label: fmt(ms) })), y, y + latencies.length * ROW_H));
  for (const l of latencies) {
    const mid = y + ROW_H / 2;
    out.push(`<text x="${LABEL_RIGHT}" y="${num(mid + 4)}" class="label">${esc(l.label)}</text>`);
    const points = (["p50", "p95", "p99"] as const).filter((p) => Number.isFinite(l[p]) && l[p] > 0);
    if (points.length > 1) {
      out.push(`<line x1="${num(xMs(l[points[0]!]))}" x2="${num(xMs(l[points.at(-1)!]))}" y1="${num(mid)}" y2="${num(mid)}" stroke="#9e9e9e" stroke-width="2"/>`);
    }
    for (const p of points) {
      out.push(`<circle class="${p}" cx="${num(xMs(l[p]))}" cy="${num(mid)}" r="4.5" fill="${COLORS[p]}"><title>${esc(`${l.label}: ${p} ${fmt(l[p])} ms`)}</title></circle>`);
    }
    if (l.goal !== undefined) {
      out.push(`<line class="goal" x1="${num(xMs(l.goal))}" x2="${num(xMs(l.goal))}" y1="${y + 2}" y2="${y + ROW_H - 2}" stroke="${COLORS.goal}" stroke-width="2" stroke-dasharray="3 2"/>`);
    }
    const value = `${fmt(l.p50)} / ${fmt(l.p95)} / ${fmt(l.p99)} ms` + (l.goal === undefined ? "" : ` (target p99 ≤ ${l.goal})`);
    out.push(`<text x="${VALUE_X}" y="${num(mid + 4)}" class="value">${esc(value)}</text>`);
    y += ROW_H;
  }
  y += 34;

  const style =
    "text{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:12px;fill:#1b1b1b}" +
    ".title{font-size:16px;font-weight:600}.heading{font-size:13px;font-weight:600}.label{text-anchor:end}.tick{text-anchor:middle;fill:#555;font-size:11px}";
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}">\n` +
    `<style>${style}</style>\n<rect width="100%" height="100%" fill="#ffffff"/>\n` +
    out.join("\n") +
    "\n</svg>\n"
  );
}

/** Vertical grid lines from `top` to `bottom` at each tick, labelled below. */
function axis(ticks: readonly { x: number; label: string }[], top: number, bottom: number): string {
  return ticks
    .map(
      (t) =>
        `<line x1="${num(t.x)}" x2="${num(t.x)}" y1="${top}" y2="${bottom}" stroke="${COLORS.grid}" stroke-width="1"/>` +
        `<text x="${num(t.x)}" y="${bottom + 14}" class="tick">${esc(t.label)}</text>`,
    )
    .join("\n");
}

/** What the latency panel's three markers are. */
function legend(y: number): string {
  return (["p50", "p95", "p99"] as const)
    .map((p, k) => {
      const x = PLOT_X + k * 70;
      return `<circle cx="${x}" cy="${y + 6}" r="4.5" fill="${COLORS[p]}"/><text x="${x + 9}" y="${y + 10}">${p}</text>`;
    })
    .join("\n");
}
