/**
 * Interleaved HTTP measurements: in every round each target gets a
 * saturation run (closed loop, fixed connections: max RPS) and then a run at
 * half of that rate (open loop: latency). Rounds alternate the order of the
 * targets (A B C, C B A, …) so that drift on a noisy machine, and whatever a
 * run leaves behind for the next, hit every target alike.
 *
 * A target compared with a ceiling is saturated in one-second slices
 * alternating with slices of that ceiling (C T T C C T …), and the round's
 * ratio is taken between those slices: this machine's speed swings by half
 * within seconds (other tenants), so two runs twenty seconds apart compare
 * two machines, while slices taken turn about see the same mix of fast and
 * slow seconds. A growth mirror is measured against the same ceiling, like
 * its twin on the small stack, and the two are compared through those
 * ratios (report.ts), so neither stack does more work than the other. A
 * target whose work goes on after its answers (POST: events) keeps one run
 * of its own, compared with the ceiling's own run in the same round.
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

/** The name under which the load generator's own CPU is counted beside the target's processes. */
export const LOAD_GENERATOR = "load generator";

/** A saturation run and the CPU ms each watched process used during it. */
interface Metered {
  saturation: Saturation;
  cpuMs: Record<string, number>;
}

/** One round of one target. */
export interface HttpRound {
  round: number;
  saturation: Saturation;
  /** CPU ms per 2xx response of each process serving the target (and of the load generator) during the saturation run. */
  cpuMsPerRequest: Record<string, number>;
  /** The ceiling's slices, taken turn about with this target's (see the file's comment). */
  paired?: { reference: string; rps: number; cpuMsPerRequest: Record<string, number> };
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
  /** Median over rounds of (this RPS / the ceiling's RPS in the slices paired with this target's). */
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
  const meters = new Map(targets.map((t) => [t.id, new CpuMeter([...t.processes, { name: LOAD_GENERATOR, pid: () => loader.pid }])]));
  const byId = new Map(targets.map((t) => [t.id, t]));
  const metered = async (t: HttpTarget, durationS: number): Promise<Metered> => {
    const meter = meters.get(t.id)!;
    meter.start();
    const saturation = await saturate(t, durationS);
    return { saturation, cpuMs: meter.stop() };
  };
  /** The target's saturation, and its reference's in the slices between (R T T R R T …), each `durationS` in all. */
  const pairedSaturation = async (t: HttpTarget, reference: HttpTarget): Promise<{ target: Metered; reference: Metered }> => {
    const slices = Math.max(1, Math.round(settings.durationS));
    const own: Metered[] = [];
    const theirs: Metered[] = [];
    for (let k = 0; k < slices; k++) {
      if (k % 2 === 0) theirs.push(await metered(reference, settings.durationS / slices));
      own.push(await metered(t, settings.durationS / slices));
      if (k % 2 === 1) theirs.push(await metered(reference, settings.durationS / slices));
    }
    return { target: mergeSlices(own), reference: mergeSlices(theirs) };
  };
  if (settings.warmupS > 0) {
    settings.log(`  warm-up: ${targets.length} targets × ${settings.warmupS} s`);
    for (const t of targets) await saturate(t, settings.warmupS);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    rss.roundStarted();
    for (const t of order) {
      const reference = t.leavesWork ? undefined : byId.get(t.ceiling ?? "");
      const pair = reference === undefined ? undefined : await pairedSaturation(t, reference);
      const { saturation, cpuMs } = pair?.target ?? (await metered(t, settings.durationS));
      const cpuMsPerRequest = perRequest(cpuMs, saturation.ok);
      const paired = pair && reference && { reference: reference.id, rps: pair.reference.saturation.rps, cpuMsPerRequest: perRequest(pair.reference.cpuMs, pair.reference.saturation.ok) };
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
      rounds.get(t.id)!.push({ round, saturation, cpuMsPerRequest, ...(paired ? { paired } : {}), half, halfWindow: { start, end: Date.now() } });
      settings.log(
        `  round ${round} ${t.label.padEnd(44)} ${Math.round(saturation.rps).toString().padStart(6)} rps` +
          (paired ? ` (${((saturation.rps / paired.rps) * 100).toFixed(1)}% of ${paired.reference} in its slices)` : "") +
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
    ratio: ceiling ? median(roundRatios(rounds, t.ceiling!, ceiling)) : undefined,
    errorShare: total ? failed / total : 0,
    cacheHitShare: ok ? hits / ok : 0,
    loaderCpuPct: median(rounds.map((r) => r.saturation.loaderCpuPct)),
    cpuMsPerRequest: Object.fromEntries(
      [...new Set(rounds.flatMap((r) => Object.keys(r.cpuMsPerRequest)))].map((name) => [name, median(rounds.map((r) => r.cpuMsPerRequest[name] ?? NaN))]),
    ),
  };
}

/**
 * A target's RPS ÷ its ceiling's, round by round: against the ceiling's
 * slices taken turn about with the target's when it was paired with it, else
 * against the ceiling's own run of the same round.
 */
export function roundRatios(rounds: readonly HttpRound[], ceiling: string, ceilingRounds: readonly HttpRound[]): number[] {
  return rounds.map((r, i) => r.saturation.rps / (r.paired !== undefined && r.paired.reference === ceiling ? r.paired.rps : (ceilingRounds[i]?.saturation.rps ?? NaN)));
}

/** CPU ms per 2xx response, by process. */
function perRequest(cpuMs: Record<string, number>, ok: number): Record<string, number> {
  return Object.fromEntries(Object.entries(cpuMs).map(([name, ms]) => [name, ok ? ms / ok : NaN]));
}

/**
 * Slices of one target as one run: counts and CPU summed, RPS the responses
 * within the slices' windows over their whole time (a slice's count also holds
 * the requests in flight at its end, answered after its window), latency
 * percentiles the slices' median.
 */
function mergeSlices(slices: readonly Metered[]): Metered {
  const sum = (pick: (s: Saturation) => number) => slices.reduce((total, m) => total + pick(m.saturation), 0);
  const statuses: Record<string, number> = {};
  const cpuMs: Record<string, number> = {};
  for (const { saturation, cpuMs: used } of slices) {
    for (const [status, n] of Object.entries(saturation.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
    for (const [name, ms] of Object.entries(used)) cpuMs[name] = (cpuMs[name] ?? 0) + ms;
  }
  const latencies = slices.map((m) => m.saturation.latencyMs);
  const durationS = sum((s) => s.durationS);
  const ok = sum((s) => s.ok);
  const saturation: Saturation = {
    kind: "saturate",
    sent: sum((s) => s.sent),
    ok,
    cacheHits: sum((s) => s.cacheHits),
    non2xx: sum((s) => s.non2xx),
    errors: sum((s) => s.errors),
    statuses,
    rps: durationS > 0 ? sum((s) => s.rps * s.durationS) / durationS : 0,
    durationS,
    latencyMs: {
      p50: median(latencies.map((l) => l.p50)),
      p90: median(latencies.map((l) => l.p90)),
      p95: median(latencies.map((l) => l.p95)),
      p97_5: median(latencies.map((l) => l.p97_5)),
      p99: median(latencies.map((l) => l.p99)),
      max: Math.max(...latencies.map((l) => l.max)),
      mean: ok > 0 ? slices.reduce((total, m) => total + m.saturation.latencyMs.mean * m.saturation.ok, 0) / ok : 0,
    },
    connectionsOpened: sum((s) => s.connectionsOpened),
    firstFailure: slices.find((m) => m.saturation.firstFailure !== undefined)?.saturation.firstFailure,
    loaderCpuPct: Math.round(sum((s) => s.loaderCpuPct) / slices.length),
  };
  return { saturation, cpuMs };
}
