/**
 * The bench's results: one JSON document, and a Markdown report whose first
 * table is also printed to stdout.
 */
import type { LagMeasurement } from "./event-metrics.js";
import { LOAD_GENERATOR, type HttpTargetResult } from "./http-rounds.js";
import type { MachineInfo } from "./machine.js";
import type { BenchOptions } from "./options.js";
import type { ProfileSummary } from "./cpu-profile.js";
import type { RelayResult } from "./relay-rounds.js";
import { rssVerdict, type RssSeries } from "./rss.js";
import { fmt, median, pct } from "./stats.js";
import { CREATE_ORDER_ID, cachedOrderTargetId } from "./targets.js";
import type { SeedSummary } from "../seed-orders.js";

/** Everything one run measured. */
export interface BenchResults {
  date: string;
  finishedAt: string;
  machine: MachineInfo;
  loadAverageAtEnd: number;
  options: BenchOptions;
  seeding: { small?: SeedSummary; large?: SeedSummary };
  http: HttpTargetResult[];
  relay?: RelayResult;
  lag?: LagMeasurement;
  rss: RssSeries[];
  profiles: { service: string; summary: ProfileSummary }[];
  goals: Goal[];
  notes: string[];
}

/** One goal of the brief and whether this run met it. */
export interface Goal {
  goal: string;
  measured: string;
  target: string;
  met: boolean | undefined;
  /** How far from the target, in words ("short by 12 points", "3.1 ms under"). */
  margin: string;
}

/** The brief's goals (issue 7), judged by judgeGoals and marked on the chart (goalsOf). */
export const GOALS = {
  /** Cached GET order: share of the bare node:http server's RPS, and its p99 at half load (ms). */
  cachedRatio: 0.7,
  cachedP99Ms: 15,
  /** POST /v1/orders: share of the bare HTTP → gRPC → gRPC chain's RPS. */
  createRatio: 0.6,
  /** Outbox relay (isolated): share of the pipelined JetStream publish ceiling. */
  relayRatio: 0.8,
  /** Commit → read-model lag p99 at half load (ms). */
  lagP99Ms: 50,
  /** Growth: every read figure of the large stack within this share of the small one's. */
  growth: 0.15,
} as const;

/** The ratio and p99 goals of a target (by id, among the targets measured), when it has any. */
export function goalsOf(id: string, measured: readonly string[]): { ratio?: number; p99Ms?: number } {
  if (id === cachedOrderTargetId(measured).id) return { ratio: GOALS.cachedRatio, p99Ms: GOALS.cachedP99Ms };
  if (id === CREATE_ORDER_ID) return { ratio: GOALS.createRatio };
  return {};
}

const row = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
const latency = (h: { p50: number; p95: number; p99: number }) => `${fmt(h.p50)} / ${fmt(h.p95)} / ${fmt(h.p99)}`;

/** The goals of the brief, judged on this run. */
export function judgeGoals(http: readonly HttpTargetResult[], relay: RelayResult | undefined, lag: LagMeasurement | undefined, options: BenchOptions): Goal[] {
  const byId = new Map(http.map((t) => [t.id, t]));
  const goals: Goal[] = [];
  const ratioGoal = (goal: string, ratio: number | undefined, min: number): Goal => ({
    goal,
    measured: pct(ratio),
    target: `≥ ${pct(min)}`,
    met: ratio === undefined || !Number.isFinite(ratio) ? undefined : ratio >= min,
    margin:
      ratio === undefined || !Number.isFinite(ratio)
        ? "not measured"
        : ratio >= min
          ? `${Math.round((ratio - min) * 100)} points above`
          : `${Math.round((min - ratio) * 100)} points short (needs ${(min / ratio).toFixed(2)}× its throughput)`,
  });
  const maxGoal = (goal: string, value: number | undefined, max: number, unit: string): Goal => ({
    goal,
    measured: value === undefined ? "–" : `${fmt(value)} ${unit}`,
    target: `≤ ${max} ${unit}`,
    met: value === undefined || !Number.isFinite(value) ? undefined : value <= max,
    margin: value === undefined || !Number.isFinite(value) ? "not measured" : value <= max ? `${fmt(max - value)} ${unit} under` : `${fmt(value - max)} ${unit} over (${fmt(value / max, 2)}×)`,
  });
  const cached = cachedOrderTargetId([...byId.keys()]);
  const order = byId.get(cached.id);
  const which = cached.isCached ? "cached GET order" : "GET order (no cached variant yet: judged on the uncached read)";
  const orderGoals = goalsOf(cached.id, [...byId.keys()]);
  goals.push(ratioGoal(`${which}: RPS vs bare node:http`, order?.ratio, orderGoals.ratio!));
  const p99Goal = maxGoal(`${which}: p99 at half load`, order?.half.p99, orderGoals.p99Ms!, "ms");
  const ceilingP99 = order?.ceiling ? byId.get(order.ceiling)?.half.p99 : undefined;
  if (ceilingP99 !== undefined) p99Goal.margin += ` (the ceiling's own p99 at half its load in the same rounds: ${fmt(ceilingP99)} ms)`;
  goals.push(p99Goal);
  goals.push(ratioGoal("POST /v1/orders: RPS vs bare HTTP→gRPC→gRPC chain", byId.get(CREATE_ORDER_ID)?.ratio, goalsOf(CREATE_ORDER_ID, [...byId.keys()]).ratio!));
  goals.push(ratioGoal("outbox relay (isolated): events/s vs JetStream pipelined publish", relay?.ratio, GOALS.relayRatio));
  goals.push(maxGoal("commit → read-model lag p99 at half load", lag?.p99, GOALS.lagP99Ms, "ms"));
  const growth = growthRows(http);
  if (growth.length > 0) {
    const badness = (f: { change: number; higherIsBetter: boolean }) => (f.higherIsBetter ? -f.change : f.change);
    const worst = growth.flatMap((g) => g.figures.map((f) => ({ ...f, label: g.label }))).sort((a, b) => badness(b) - badness(a))[0]!;
    const ok = growth.every((g) => g.figures.every((f) => f.within));
    goals.push({
      goal: `${options.largeOrders.toLocaleString("en-US")} stored: every read figure within ${pct(GOALS.growth)} of the ${options.smallOrders.toLocaleString("en-US")} figure`,
      measured: `worst: ${worst.label} ${worst.name} ${worst.change >= 0 ? "+" : ""}${Math.round(worst.change * 100)}%`,
      target: `within ±${pct(GOALS.growth)} (worse direction)`,
      met: ok,
      margin: ok ? "all within" : `${growth.flatMap((g) => g.figures.filter((f) => !f.within).map((f) => `${g.label} ${f.name}`)).join(", ")} beyond`,
    });
  }
  return goals;
}

/** Large vs small: per figure, the change (median over rounds of the per-round ratio, minus 1). */
export function growthRows(http: readonly HttpTargetResult[]) {
  const byId = new Map(http.map((t) => [t.id, t]));
  return http
    .filter((t) => t.growthOf !== undefined && byId.has(t.growthOf))
    .map((large) => {
      const small = byId.get(large.growthOf!)!;
      type Round = HttpTargetResult["rounds"][number];
      const perRound = (pick: (r: Round) => number) => median(large.rounds.map((r, i) => pick(r) / pick(small.rounds[i] ?? r)));
      // RPS and CPU per request each as a ratio to the ceiling's slices taken turn about with the target's (its own run's without them).
      const normalized = (r: Round, pick: (x: { rps: number; cpuMsPerRequest: Record<string, number> }) => number) =>
        pick({ rps: r.saturation.rps, cpuMsPerRequest: r.cpuMsPerRequest }) / (r.paired ? pick(r.paired) : 1);
      const againstCeiling = (pick: (x: { rps: number; cpuMsPerRequest: Record<string, number> }) => number) => perRound((r) => normalized(r, pick));
      const figures = [
        { name: "RPS", change: againstCeiling((x) => x.rps) - 1, higherIsBetter: true },
        { name: "CPU/request", change: againstCeiling((x) => cpuSum(serverCpu(x.cpuMsPerRequest))) - 1, higherIsBetter: false },
        { name: "p50", change: perRound((r) => r.half.latencyMs.p50) - 1, higherIsBetter: false },
        { name: "p95", change: perRound((r) => r.half.latencyMs.p95) - 1, higherIsBetter: false },
        { name: "p99", change: perRound((r) => r.half.latencyMs.p99) - 1, higherIsBetter: false },
      ].map((f) => ({ ...f, within: f.higherIsBetter ? f.change >= -GOALS.growth : f.change <= GOALS.growth }));
      return { label: small.label, small, large, figures };
    });
}

/** The summary table (Markdown): target, RPS, ceiling, ratio, half-load latency. */
export function summaryTable(results: Pick<BenchResults, "http" | "relay" | "lag">): string {
  const byId = new Map(results.http.map((t) => [t.id, t]));
  const lines = [
    row(["target", "RPS", "ceiling", "ceiling RPS", "ratio", "p50 / p95 / p99 ms at half load", "ceiling p50 / p95 / p99 ms at half load"]),
    row(["---", "---:", "---", "---:", "---:", "---:", "---:"]),
  ];
  for (const t of results.http) {
    if (t.ceiling === undefined || t.growthOf !== undefined) continue;
    const c = byId.get(t.ceiling);
    lines.push(row([t.label, fmt(t.rps), c?.label ?? "–", fmt(c?.rps), pct(t.ratio), latency(t.half), c ? latency(c.half) : "–"]));
  }
  if (results.relay) {
    const r = results.relay;
    lines.push(row(["outbox relay (events/s, isolated)", fmt(r.eventsPerSec), "JetStream publish, 256 in flight", fmt(r.ceilingMsgsPerSec), pct(r.ratio), "–", "–"]));
    lines.push(row(["outbox relay (events/s, whole system running)", fmt(r.inSystem.drain.eventsPerSec), "JetStream publish, 256 in flight", fmt(r.ceilingMsgsPerSec), pct(r.inSystem.drain.eventsPerSec / r.ceilingMsgsPerSec), "–", "–"]));
  }
  if (results.lag) {
    const l = results.lag;
    lines.push(row(["commit → read-model lag (POST at half load)", "–", "–", "–", "–", latency(l), "–"]));
  }
  return lines.join("\n");
}

function growthTable(http: readonly HttpTargetResult[]): string {
  const rows = growthRows(http);
  if (rows.length === 0) return "";
  const lines = [
    row(["read", "stored", "RPS", "p50 / p95 / p99 ms at half load", "large / small: RPS", "CPU/request", "p50", "p95", "p99"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
  ];
  const change = (f: { change: number; within: boolean }) => `${f.change >= 0 ? "+" : ""}${Math.round(f.change * 100)}%${f.within ? "" : " ✗"}`;
  for (const g of rows) {
    lines.push(row([g.label, (g.small.storedOrders ?? 0).toLocaleString("en-US"), fmt(g.small.rps), latency(g.small.half), "", "", "", "", ""]));
    lines.push(row(["", (g.large.storedOrders ?? 0).toLocaleString("en-US"), fmt(g.large.rps), latency(g.large.half), ...g.figures.map(change)]));
  }
  return lines.join("\n");
}

/** The CPU ms per request of the processes serving a target (the load generator's left out), by process. */
function serverCpu(cpuMsPerRequest: Record<string, number>): [string, number][] {
  return Object.entries(cpuMsPerRequest).filter(([name, ms]) => name !== LOAD_GENERATOR && Number.isFinite(ms));
}

/** The total of `serverCpu`'s figures. */
function cpuSum(entries: readonly [string, number][]): number {
  return entries.reduce((total, [, ms]) => total + ms, 0);
}

function cpuTable(http: readonly HttpTargetResult[]): string {
  const lines = [
    row(["target", "RPS", "cache hits", "CPU ms per request, servers (sum)", "by process", "load generator"]),
    row(["---", "---:", "---:", "---:", "---", "---:"]),
  ];
  for (const t of http) {
    const servers = serverCpu(t.cpuMsPerRequest);
    const parts = servers.filter(([, ms]) => ms >= 0.005).sort((a, b) => b[1] - a[1]).map(([name, ms]) => `${name} ${fmt(ms, 2)}`);
    lines.push(row([t.label, fmt(t.rps), pct(t.cacheHitShare), fmt(cpuSum(servers), 2), parts.join(", "), fmt(t.cpuMsPerRequest[LOAD_GENERATOR], 2)]));
  }
  return lines.join("\n");
}

function rssTable(series: readonly RssSeries[]): string {
  const lines = [
    row(["process", "phase", "RSS at first round end (MB)", "peak", "at last round end", "per round", "bounded", "V8 heap floor first → last round (MB)", "heap bounded"]),
    row(["---", "---", "---:", "---:", "---:", "---:", "---", "---:", "---"]),
  ];
  for (const s of series) {
    if (s.samples.length === 0 && s.roundEnds.length === 0) continue;
    const v = rssVerdict(s);
    const heap = v.heap === undefined ? ["–", "–"] : [`${fmt(v.heap.first)} → ${fmt(v.heap.last)}`, v.heap.bounded ? "yes" : "**no**"];
    lines.push(row([s.process, s.phase, fmt(v.first), fmt(v.peak), fmt(v.last), `${v.perRoundMb >= 0 ? "+" : ""}${fmt(v.perRoundMb, 2)} MB`, v.bounded ? "yes" : "**no**", ...heap]));
  }
  return lines.join("\n");
}

function roundsTable(http: readonly HttpTargetResult[]): string {
  const lines = [
    row(["target", "round", "RPS (saturation)", "vs its reference's slices", "sat. p50 / p97.5 / p99 ms", "half rate", "half p50 / p95 / p99 ms", "non-2xx / errors", "loader CPU"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
  ];
  for (const t of http) {
    for (const r of t.rounds) {
      const s = r.saturation;
      lines.push(
        row([
          t.label,
          r.round,
          fmt(s.rps),
          r.paired ? `${((s.rps / r.paired.rps) * 100).toFixed(1)}% of ${fmt(r.paired.rps)}` : "–",
          `${fmt(s.latencyMs.p50)} / ${fmt(s.latencyMs.p97_5)} / ${fmt(s.latencyMs.p99)}`,
          r.half.rate,
          latency(r.half.latencyMs),
          `${s.non2xx + r.half.non2xx} / ${s.errors + r.half.errors}`,
          `${s.loaderCpuPct}%`,
        ]),
      );
    }
  }
  return lines.join("\n");
}

/** The whole report in Markdown; `chartFile` is the chart's file name beside it (see chart.ts), shown under the summary. */
export function markdownReport(results: BenchResults, chartFile?: string): string {
  const m = results.machine;
  const o = results.options;
  const parts: string[] = [];
  parts.push(`# Orderly bench — ${results.date}`);
  parts.push(
    [
      `- machine: ${m.nproc} CPUs, ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}`,
      `- Node.js ${m.node}; ${m.natsServer}`,
      `- code: commit ${m.git.commit}` + (m.git.changedFiles.length ? `, with uncommitted changes in ${m.git.changedFiles.join(", ")}` : ", no uncommitted changes"),
      `- load average (1 min): ${fmt(m.loadAverage1m)} at start, ${fmt(results.loadAverageAtEnd)} at end (other work on the machine shows here)`,
      `- run: ${o.rounds} interleaved rounds per phase, ${o.durationS} s per saturation run and per half-load run, ${o.connections} connections at saturation, phases ${o.phases.join(", ")}${Object.keys(o.stackEnv).length ? `; Orderly environment ${Object.entries(o.stackEnv).map(([k, v]) => `${k}=${v}`).join(" ")}` : ""}; finished ${results.finishedAt}`,
      o.running
        ? `- Orderly: the running system at ${o.running.gatewayUrl}` +
          (o.phases.includes("reads") ? `, with ${o.smallOrders.toLocaleString("en-US")} orders the bench created there for the reads` : "") +
          " (no growth check)"
        : `- stored orders: ${o.smallOrders.toLocaleString("en-US")} for the main figures, ${o.largeOrders.toLocaleString("en-US")} on the large side of the growth check` +
          (results.seeding.large ? ` (seeded in ${fmt(results.seeding.large.ms / 1000)} s)` : ""),
    ].join("\n"),
  );
  parts.push(
    "## Summary\n\nRPS: median over rounds at saturation; ratio: median over rounds of target ÷ ceiling, both from the one-second slices taken turn about in the target's saturation run (so it need not equal RPS ÷ ceiling RPS, which come from each one's own runs); latency: medians over rounds of open-loop runs at half of that round's saturation rate, measured from each request's due time.\n\n" +
      summaryTable(results) +
      (chartFile === undefined ? "" : `\n\n![Each target's share of its ceiling, and its latency at half load](${encodeURI(chartFile)})`),
  );
  parts.push(
    "## Goals\n\n" +
      [row(["goal", "measured", "target", "met", "margin"]), row(["---", "---:", "---:", "---", "---"])]
        .concat(results.goals.map((g) => row([g.goal, g.measured, g.target, g.met === undefined ? "–" : g.met ? "met" : "**missed**", g.margin])))
        .join("\n"),
  );
  const growth = growthTable(results.http);
  if (growth) parts.push(`## Growth: ${o.smallOrders.toLocaleString("en-US")} vs ${o.largeOrders.toLocaleString("en-US")} orders stored\n\nTwo stacks side by side, rounds interleaved; changes are medians of per-round ratios (✗: more than ${pct(GOALS.growth)} worse). RPS and CPU/request are compared through each stack's ratio to the ceiling in its slices.\n\n${growth}`);
  if (results.relay) {
    const r = results.relay;
    parts.push(
      "## Outbox relay\n\n" +
        `Event payload ≈ ${r.payloadBytes} bytes. Relay: NATS stopped, ${o.relayOrders} orders created, NATS restarted; rate from the relay's record of its batches (outbox_batches, after the first batch), and CPU from the first batch on too: the first publish after nats-server restarts makes JetStream rebuild the stream's duplicate window (reading back every message of the last 10 minutes), a one-off the ceiling's long-running server does not pay. ` +
        `An unrecorded warm-up drain of half as many orders comes first (unless --warmup 0). Isolated rounds also stop inventory, query and the gateway while the relay drains, so the relay is its nats-server's only client, like the ceiling's publisher, and bring NATS back once the order service is idle (its checkpoint of the writes done: "settled"); the last round drains with every service running, at once. ` +
        `Ceiling: a separate nats-server, 256 PubAcks outstanding (sliding); "batched": 256 at a time, waiting for all (the relay's pattern without SQLite).\n\n` +
        [
          row([
            "round",
            "isolated",
            "backlog events",
            "settled (ms)",
            "relay events/s",
            "batches",
            "drained after NATS back (ms)",
            "relay CPU ms/event: order / nats-server",
            "ceiling msgs/s",
            "batched msgs/s",
            "ceiling CPU ms/msg: publisher / nats-server",
          ]),
          row(["---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
        ]
          .concat(
            r.rounds.map((x) =>
              row([
                x.round,
                "yes",
                x.backlog,
                x.settled === undefined ? "–" : x.settled.idle ? x.settled.ms : `not idle after ${x.settled.ms}`,
                fmt(x.drain.eventsPerSec),
                x.drain.batches,
                x.drain.drainMs,
                `${fmt(x.cpuMsPerEvent.order, 2)} / ${fmt(x.cpuMsPerEvent.nats, 2)}`,
                fmt(x.ceiling.msgsPerSec),
                fmt(x.batchedPublish.msgsPerSec),
                `${fmt(x.ceiling.cpuMsPerMsg, 2)} / ${fmt(x.ceiling.natsCpuMsPerMsg, 2)}`,
              ]),
            ),
          )
          .concat([
            row([
              r.inSystem.round,
              "no",
              r.inSystem.backlog,
              "–",
              fmt(r.inSystem.drain.eventsPerSec),
              r.inSystem.drain.batches,
              r.inSystem.drain.drainMs,
              `${fmt(r.inSystem.cpuMsPerEvent.order, 2)} / ${fmt(r.inSystem.cpuMsPerEvent.nats, 2)}`,
              "–",
              "–",
              "–",
            ]),
          ])
          .join("\n"),
    );
  }
  if (results.lag) {
    const l = results.lag;
    parts.push(`## Commit → read-model lag\n\nOrder events created during the POST /v1/orders half-load runs: query.db processed_events.applied_time (consumer query-orders) − order.db outbox.create_time. ${l.events} events, ${l.missing} not applied when measured.\n\np50 ${fmt(l.p50)} ms, p95 ${fmt(l.p95)} ms, p99 ${fmt(l.p99)} ms, max ${fmt(l.max)} ms.`);
  }
  if (results.http.length > 0) {
    parts.push(
      "## CPU per request at saturation\n\nCPU time (user + system, /proc/<pid>/stat) each process used during the saturation runs, divided by the 2xx responses; medians over rounds. " +
        "On a shared VM, steal inflates all of these alike; compare them with each other, not with other machines.\n\n" +
        cpuTable(results.http),
    );
  }
  parts.push("## Memory (RSS) under sustained load\n\nSampled every second from /proc/<pid>/status and at the end of every round; bounded = RSS at the last round end ≤ 105% (+5 MB) of RSS at the middle round's end (a plateau over the second half). The V8 heap floor is the lowest heap in use each Node.js process reported on its /metrics (read every 3 s) during a round — close to what survives a garbage collection, so a leak shows as a floor that keeps rising while RSS alone also moves with heap sizing; heap bounded = the lowest floor of the second half of the rounds ≤ 105% (+5 MB) of the lowest of the first half. Three rounds are short: a “no” can be heap warm-up; `--rounds 10 --only writes` soaks longer.\n\n" + rssTable(results.rss));
  for (const p of results.profiles) {
    parts.push(
      `## CPU profile: ${p.service}\n\n${p.summary.busyMs} ms busy of ${p.summary.wallMs} ms profiled (\`${p.summary.file}\`).\n\n` +
        [row(["self time by package", "share", "ms"]), row(["---", "---:", "---:"])].concat(p.summary.packages.map((e) => row([e.name, pct(e.share), e.ms]))).join("\n") +
        "\n\n" +
        [row(["self time by function", "share", "ms"]), row(["---", "---:", "---:"])].concat(p.summary.functions.map((e) => row([`\`${e.name}\``, pct(e.share), e.ms]))).join("\n"),
    );
  }
  parts.push("## Every round\n\n" + roundsTable(results.http));
  if (results.notes.length) parts.push("## Notes\n\n" + results.notes.map((n) => `- ${n}`).join("\n"));
  return parts.join("\n\n") + "\n";
}
