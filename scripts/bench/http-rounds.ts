/**
 * Interleaved HTTP measurements: in every round each target gets a
 * saturation run (closed loop, fixed connections: max RPS) and then a run at
 * half of that rate (open loop: latency). Rounds alternate the order of the
 * targets (A B C, C B A, …) so that drift on a noisy machine, and whatever a
 * run leaves behind for the next, hit every target alike.
 */
import type { LoadGenerator } from "./load-generator.js";
import type { LoadResult } from "./loader-process.js";
import { requestGenerator } from "./requests.js";
import { CpuMeter } from "./proc.js";
import type { RssSampler } from "./rss.js";
import { median } from "./stats.js";
import type { HttpTarget } from "./targets.js";

type Saturation = Extract<LoadResult, { kind: "saturate" }>;
type HalfLoad = Extract<LoadResult, { kind: "rate" }>;

/** One round of one target. */
export interface HttpRound {
  round: number;
  saturation: Saturation;
  /** CPU ms per 2xx response of each process serving the target (and of the load generator) during the saturation run. */
  cpuMsPerRequest: Record<string, number>;
  half: HalfLoad;
  /** When the half-load run ran (epoch ms), e.g. to find the events it caused. */
  halfWindow: { start: number; end: number };
}

/** A target's rounds and their medians. */
export interface HttpTargetResult {
  id: string;
  label: string;
  ceiling?: string;
  growthOf?: string;
  storedOrders?: number;
  rounds: HttpRound[];
  /** Median over rounds of 2xx responses per second at saturation. */
  rps: number;
  /** Median over rounds of the half-load latency percentiles (ms). */
  half: { rate: number; p50: number; p95: number; p99: number };
  /** Median over rounds of (this RPS / the ceiling's RPS in the same round). */
  ratio?: number;
  /** Share of non-2xx responses and errors over all runs (should be 0). */
  errorShare: number;
  /** Share of 2xx responses answered from the gateway's read cache, over all runs. */
  cacheHitShare: number;
  /** Median CPU use of the load generator during saturation runs (%). */
  loaderCpuPct: number;
  /** Median over rounds of CPU ms per request, by process, at saturation. */
  cpuMsPerRequest: Record<string, number>;
}

/** Measurement settings. */
export interface RoundSettings {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  log: (line: string) => void;
}

/** Sends one request of each target and fails unless it gets a 2xx (catches a wrong setup before minutes of load). */
export async function probeTargets(targets: readonly HttpTarget[]): Promise<void> {
  for (const t of targets) {
    const r = requestGenerator(t.request)();
    const response = await fetch(`http://${t.endpoint.host}:${t.endpoint.port}${r.path}`, {
      method: r.method,
      headers: { authorization: `Bearer ${t.token}`, ...(r.body === undefined ? {} : { "content-type": "application/json" }) },
      body: r.body,
    });
    const text = await response.text();
    if (response.status < 200 || response.status > 299) throw new Error(`${t.label}: ${r.method} ${r.path} answered ${response.status}: ${text.slice(0, 300)}`);
  }
}

/** Runs `rounds` interleaved rounds over the targets. */
export async function measureHttpRounds(
  loader: LoadGenerator,
  targets: readonly HttpTarget[],
  settings: RoundSettings,
  rss: RssSampler,
): Promise<HttpTargetResult[]> {
  await probeTargets(targets);
  const rounds = new Map<string, HttpRound[]>(targets.map((t) => [t.id, []]));
  const saturate = (t: HttpTarget, durationS: number) =>
    loader.run({ kind: "saturate", host: t.endpoint.host, port: t.endpoint.port, request: t.request, token: t.token, connections: settings.connections, durationS });
  const meters = new Map(targets.map((t) => [t.id, new CpuMeter([...t.processes, { name: "load generator", pid: () => loader.pid }])]));
  if (settings.warmupS > 0) {
    settings.log(`  warm-up: ${targets.length} targets × ${settings.warmupS} s`);
    for (const t of targets) await saturate(t, settings.warmupS);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    rss.roundStarted();
    for (const t of order) {
      const meter = meters.get(t.id)!;
      meter.start();
      const saturation = await saturate(t, settings.durationS);
      const cpuMsPerRequest = Object.fromEntries(Object.entries(meter.stop()).map(([name, ms]) => [name, saturation.ok ? ms / saturation.ok : NaN]));
      const rate = Math.max(1, Math.round(saturation.rps / 2));
      const start = Date.now();
      const half = await loader.run({
        kind: "rate",
        host: t.endpoint.host,
        port: t.endpoint.port,
        request: t.request,
        token: t.token,
        rate,
        durationS: settings.durationS,
        maxConnections: Math.max(256, settings.connections * 4),
      });
      rounds.get(t.id)!.push({ round, saturation, cpuMsPerRequest, half, halfWindow: { start, end: Date.now() } });
      settings.log(
        `  round ${round} ${t.label.padEnd(44)} ${Math.round(saturation.rps).toString().padStart(6)} rps` +
          `  half ${rate} rps: p50 ${half.latencyMs.p50.toFixed(1)} p95 ${half.latencyMs.p95.toFixed(1)} p99 ${half.latencyMs.p99.toFixed(1)} ms` +
          (saturation.cacheHits + half.cacheHits > 0 ? `  cache hits ${Math.round(((saturation.cacheHits + half.cacheHits) / (saturation.ok + half.ok)) * 100)}%` : "") +
          (saturation.non2xx + saturation.errors + half.non2xx + half.errors > 0
            ? `  (non-2xx ${saturation.non2xx + half.non2xx}, errors ${saturation.errors + half.errors})`
            : ""),
      );
    }
    rss.roundEnded();
  }
  return targets.map((t) => summarize(t, rounds.get(t.id)!, t.ceiling === undefined ? undefined : rounds.get(t.ceiling)));
}

function summarize(t: HttpTarget, rounds: HttpRound[], ceiling: HttpRound[] | undefined): HttpTargetResult {
  let failed = 0;
  let total = 0;
  let ok = 0;
  let hits = 0;
  for (const r of rounds) {
    failed += r.saturation.non2xx + r.saturation.errors + r.half.non2xx + r.half.errors;
    total += r.saturation.ok + r.saturation.non2xx + r.saturation.errors + r.half.due;
    ok += r.saturation.ok + r.half.ok;
    hits += r.saturation.cacheHits + r.half.cacheHits;
  }
  return {
    id: t.id,
    label: t.label,
    ceiling: t.ceiling,
    growthOf: t.growthOf,
    storedOrders: t.storedOrders,
    rounds,
    rps: median(rounds.map((r) => r.saturation.rps)),
    half: {
      rate: median(rounds.map((r) => r.half.rate)),
      p50: median(rounds.map((r) => r.half.latencyMs.p50)),
      p95: median(rounds.map((r) => r.half.latencyMs.p95)),
      p99: median(rounds.map((r) => r.half.latencyMs.p99)),
    },
    ratio: ceiling ? median(rounds.map((r, i) => r.saturation.rps / (ceiling[i]?.saturation.rps ?? NaN))) : undefined,
    errorShare: total ? failed / total : 0,
    cacheHitShare: ok ? hits / ok : 0,
    loaderCpuPct: median(rounds.map((r) => r.saturation.loaderCpuPct)),
    cpuMsPerRequest: Object.fromEntries(
      [...new Set(rounds.flatMap((r) => Object.keys(r.cpuMsPerRequest)))].map((name) => [name, median(rounds.map((r) => r.cpuMsPerRequest[name] ?? NaN))]),
    ),
  };
}
