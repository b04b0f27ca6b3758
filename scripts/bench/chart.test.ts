import { describe, expect, test } from "vitest";
import { benchChart, chartRows } from "./chart.js";
import type { HttpRound, HttpTargetResult } from "./http-rounds.js";
import type { RelayResult } from "./relay-rounds.js";
import { markdownReport, GOALS, type BenchResults } from "./report.js";

/** A round as the bench records it (the fields the chart and the report read). */
function round(n: number, rps: number, paired: { reference: string; rps: number } | undefined, half: { p50: number; p95: number; p99: number }): HttpRound {
  const latencyMs = { ...half, p97_5: half.p99, mean: half.p50, max: half.p99 };
  return {
    round: n,
    saturation: { kind: "saturate", rps, ok: rps * 5, non2xx: 0, errors: 0, cacheHits: 0, latencyMs, loaderCpuPct: 50 },
    cpuMsPerRequest: { gateway: 0.04 },
    ...(paired ? { paired: { ...paired, cpuMsPerRequest: {} } } : {}),
    half: { kind: "rate", rate: rps / 2, due: rps * 2.5, ok: rps * 2.5, non2xx: 0, errors: 0, cacheHits: 0, latencyMs, loaderCpuPct: 30 },
    halfWindow: { start: 0, end: 5000 },
  } as unknown as HttpRound;
}

function target(t: Pick<HttpTargetResult, "id" | "label" | "rounds"> & Partial<HttpTargetResult>): HttpTargetResult {
  return { rps: t.rounds[0]!.saturation.rps, half: { rate: 0, p50: 1, p95: 2, p99: 3 }, errorShare: 0, cacheHitShare: 0, loaderCpuPct: 50, cpuMsPerRequest: { gateway: 0.04 }, ...t };
}

const hello = target({
  id: "ceiling-http-hello",
  label: "bare node:http hello",
  rounds: [1, 2, 3].map((n) => round(n, 40_000, undefined, { p50: 1.5, p95: 11, p99: 35 })),
  half: { rate: 20_000, p50: 1.5, p95: 11, p99: 35 },
});
const chain = target({ id: "ceiling-http-grpc-grpc", label: "bare HTTP→gRPC→gRPC echo", rounds: [1, 2, 3].map((n) => round(n, 2000, undefined, { p50: 2, p95: 25, p99: 40 })) });
const cached = target({
  id: "get-order-cached",
  label: "GET /v1/orders/{id} (cached: 64 hot orders) & <co>",
  ceiling: hello.id,
  // Paired slices: 50%, 60% and 57% of the ceiling's slices (not of its own runs' 40,000).
  rounds: [
    round(1, 20_000, { reference: hello.id, rps: 40_000 }, { p50: 1.4, p95: 5, p99: 12 }),
    round(2, 24_000, { reference: hello.id, rps: 40_000 }, { p50: 1.4, p95: 5, p99: 17 }),
    round(3, 22_800, { reference: hello.id, rps: 40_000 }, { p50: 1.4, p95: 5, p99: 20 }),
  ],
  ratio: 0.57,
  half: { rate: 11_000, p50: 1.4, p95: 5, p99: 17 },
});
const create = target({
  id: "create-order",
  label: "POST /v1/orders",
  ceiling: chain.id,
  // Not paired: each round against the chain's own run of that round.
  rounds: [1, 2, 3].map((n) => round(n, 480, undefined, { p50: 12, p95: 45, p99: 57 })),
  ratio: 0.24,
  half: { rate: 240, p50: 12, p95: 45, p99: 57 },
});
const relay = {
  payloadBytes: 286,
  ratio: 0.84,
  eventsPerSec: 40_000,
  ceilingMsgsPerSec: 48_000,
  batchedMsgsPerSec: 49_000,
  rounds: [
    { round: 1, drain: { eventsPerSec: 38_000 }, ceiling: { msgsPerSec: 50_000 } },
    { round: 2, drain: { eventsPerSec: 40_000 }, ceiling: { msgsPerSec: 47_500 } },
  ],
} as unknown as RelayResult;
const lag = { events: 7910, missing: 0, p50: 2, p95: 10, p99: 24, max: 65 };
const results = { date: "2026-12-04T04:00:00.000Z", http: [hello, cached, chain, create], relay, lag };

/** What a viewer shows for escaped XML text. */
function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
}

/** Every element of an SVG (or XML) document, checking that tags nest and close. */
function elements(svg: string): { name: string; attributes: Record<string, string>; text: string }[] {
  const found: { name: string; attributes: Record<string, string>; text: string }[] = [];
  const open: { name: string; at: number; index: number }[] = [];
  for (const tag of svg.matchAll(/<(\/?)([a-z]+)([^>]*?)(\/?)>/g)) {
    const [whole, closing, name, rest, selfClosing] = tag;
    if (closing) {
      const top = open.pop();
      expect(top?.name, `</${name}> closes <${top?.name}>`).toBe(name);
      found[top!.index]!.text = unescapeXml(svg.slice(top!.at, tag.index).replace(/<[^>]*>/g, ""));
      continue;
    }
    const attributes = Object.fromEntries([...rest!.matchAll(/([a-z][a-z0-9-]*)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]));
    found.push({ name: name!, attributes, text: "" });
    if (!selfClosing) open.push({ name: name!, at: tag.index + whole.length, index: found.length - 1 });
  }
  expect(open, "every tag is closed").toEqual([]);
  return found;
}

describe("the bench's chart", () => {
  test("has a bar per measured share, every round's share, and the brief's targets", () => {
    const { ratios, latencies } = chartRows(results);
    expect(ratios.map((r) => [r.label, r.ratio, r.goal])).toEqual([
      [cached.label, 0.57, GOALS.cachedRatio],
      [create.label, 0.24, GOALS.createRatio],
      ["outbox relay (isolated)", 0.84, GOALS.relayRatio],
    ]);
    expect(ratios[0]!.rounds).toEqual([0.5, 0.6, 0.57]);
    expect(ratios[1]!.rounds).toEqual([0.24, 0.24, 0.24]);
    expect(ratios[2]!.rounds).toEqual([0.76, 40_000 / 47_500]);
    expect(latencies.map((l) => [l.label, l.p99, l.goal])).toEqual([
      [hello.label, 35, undefined],
      [cached.label, 17, GOALS.cachedP99Ms],
      [chain.label, 3, undefined],
      [create.label, 57, undefined],
      ["commit → read-model lag (POST at half load)", 24, GOALS.lagP99Ms],
    ]);
  });

  test("draws them to scale in a well-formed SVG", () => {
    const svg = benchChart(results);
    expect(svg.startsWith("<svg xmlns=")).toBe(true);
    const all = elements(svg);
    const texts = all.filter((e) => e.name === "text").map((e) => e.text);
    // Labels are escaped, so a label's own characters cannot break the document.
    expect(svg).toContain("GET /v1/orders/{id} (cached: 64 hot orders) &amp; &lt;co&gt;");
    expect(texts).toContain("57% of bare node:http hello (target ≥ 70%)");
    expect(texts).toContain("84% of JetStream publish, 256 in flight (target ≥ 80%)");
    expect(texts).toContain("1.4 / 5 / 17 ms (target p99 ≤ 15)");

    // Bars from one origin, as long as their shares; each target's line where its share would be.
    const bars = all.filter((e) => e.attributes.class === "bar").map((e) => ({ x: Number(e.attributes.x), width: Number(e.attributes.width), title: e.text }));
    expect(bars.map((b) => b.title)).toEqual([
      `${cached.label}: 57% of bare node:http hello (rounds: 50%, 60%, 57%)`,
      `${create.label}: 24% of bare HTTP→gRPC→gRPC echo (rounds: 24%, 24%, 24%)`,
      "outbox relay (isolated): 84% of JetStream publish, 256 in flight (rounds: 76%, 84%)",
    ]);
    const [cachedBar, createBar, relayBar] = bars;
    expect(new Set(bars.map((b) => b.x)).size).toBe(1);
    expect(cachedBar!.width / createBar!.width).toBeCloseTo(0.57 / 0.24, 1);
    expect(relayBar!.width / createBar!.width).toBeCloseTo(0.84 / 0.24, 1);
    const fullWidth = cachedBar!.width / 0.57;
    const goals = all.filter((e) => e.name === "line" && e.attributes.class === "goal").map((e) => Number(e.attributes.x1));
    const shareGoals = goals.slice(0, 3).map((x) => (x - cachedBar!.x) / fullWidth);
    expect(shareGoals.map((g) => Math.round(g * 100) / 100)).toEqual([GOALS.cachedRatio, GOALS.createRatio, GOALS.relayRatio]);
    expect(all.filter((e) => e.attributes.class === "round")).toHaveLength(3 + 3 + 2);

    // Latency on a log scale: 1, 10 and 100 ms a decade apart; p50 left of p95 left of p99.
    const decade = (label: string) => Number(all[all.findIndex((e) => e.name === "text" && e.attributes.class === "tick" && e.text === label)]!.attributes.x);
    expect(decade("100") - decade("10")).toBeCloseTo(decade("10") - decade("1"), 0);
    const marker = (p: string, label: string) => Number(all.find((e) => e.attributes.class === p && e.text === `${label}: ${p} ${p === "p50" ? 1.4 : p === "p95" ? 5 : 17} ms`)!.attributes.cx);
    expect(marker("p50", cached.label)).toBeLessThan(marker("p95", cached.label));
    expect(marker("p95", cached.label)).toBeLessThan(marker("p99", cached.label));
    // 17 ms sits log10(1.7) of a decade past 10 ms.
    expect((marker("p99", cached.label) - decade("10")) / (decade("100") - decade("10"))).toBeCloseTo(Math.log10(1.7), 2);
  });

  test("leaves out what was not measured, and stays well-formed", () => {
    const failed = target({ ...cached, ratio: NaN, half: { rate: 0, p50: NaN, p95: NaN, p99: NaN }, rounds: [round(1, 0, { reference: hello.id, rps: 0 }, { p50: NaN, p95: NaN, p99: NaN })] });
    const svg = benchChart({ date: results.date, http: [hello, failed], relay: undefined, lag: undefined });
    const all = elements(svg);
    expect(all.filter((e) => e.attributes.class === "bar" || e.attributes.class === "round")).toEqual([]);
    // Its rows are there, named, with nothing drawn and "–" for the figures; the hello's latency is drawn.
    const texts = all.filter((e) => e.name === "text").map((e) => e.text);
    expect(texts).toContain("– of bare node:http hello (target ≥ 70%)");
    expect(texts).toContain("– / – / – ms (target p99 ≤ 15)");
    expect(all.filter((e) => ["p50", "p95", "p99"].includes(e.attributes.class ?? "")).map((e) => e.text)).toEqual([
      `${hello.label}: p50 1.5 ms`,
      `${hello.label}: p95 11 ms`,
      `${hello.label}: p99 35 ms`,
    ]);
    expect(svg).not.toMatch(/NaN|Infinity/);
    elements(benchChart({ date: results.date, http: [], relay: undefined, lag: undefined }));
  });

  test("is shown under the report's summary", () => {
    const full: BenchResults = {
      ...results,
      finishedAt: results.date,
      machine: { nproc: 2, cpuModel: "test CPU", memoryGiB: 4, kernel: "6.0", node: "v20.20.2", natsServer: "nats-server: v2.9.10", loadAverage1m: 1, git: { commit: "abc1234", changedFiles: [] } },
      loadAverageAtEnd: 1,
      options: { rounds: 3, durationS: 5, connections: 64, phases: ["reads", "writes"], stackEnv: {}, smallOrders: 10_000, largeOrders: 100_000, relayOrders: 10_000 },
      seeding: {},
      relay: undefined,
      rss: [],
      profiles: [],
      goals: [],
      notes: [],
    } as unknown as BenchResults;
    const report = markdownReport(full, "2026-12-04T04-00-00Z.svg");
    const summary = report.slice(report.indexOf("## Summary"), report.indexOf("## Goals"));
    expect(summary).toContain("![Each target's share of its ceiling, and its latency at half load](2026-12-04T04-00-00Z.svg)");
    expect(markdownReport(full)).not.toContain("![");
    expect(report).toContain("- stored orders: 10,000 for the main figures, 100,000 on the large side of the growth check");
    const running = markdownReport({ ...full, options: { ...full.options, running: { gatewayUrl: "http://127.0.0.1:8080" } } } as unknown as BenchResults);
    expect(running).toContain("- Orderly: the running system at http://127.0.0.1:8080, with 10,000 orders the bench created there for the reads (no growth check)");
  });
});
