/**
 * `npm run bench`: Orderly measured against this machine's own ceilings, in
 * one run. The machine is shared and noisy, so every figure is a ratio to a
 * ceiling measured side by side, in interleaved rounds:
 *
 *   reads   bare node:http hello | GET order, GET inventory item, list a customer's orders
 *           on a stack with 10k orders | the same reads on a stack with 100k (1M with --growth)
 *   writes  bare HTTP→gRPC→gRPC echo chain | POST /v1/orders (and the commit → read-model lag)
 *   relay   JetStream publish, 256 in flight | the outbox relay draining a backlog
 *
 * The load always comes from a separate process (scripts/bench/loader-process.ts);
 * every server under test is its own process. With --gateway URL the reads
 * and writes go to a running Orderly instead of stacks the bench starts
 * (scripts/bench/running.ts). Results go to bench-results/<timestamp>.json,
 * .md and .svg (the chart); the summary table is printed.
 * `npm run bench -- --help` lists the options.
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { natsServerBinary, startNats } from "../test/helpers/nats.js";
import { startService, waitFor } from "../test/helpers/processes.js";
import { benchChart } from "./bench/chart.js";
import { Cleanup } from "./bench/cleanup.js";
import { summarizeProfile } from "./bench/cpu-profile.js";
import { commitToReadModelLag, unappliedSince } from "./bench/event-metrics.js";
import { measureHttpRounds, type HttpTargetResult } from "./bench/http-rounds.js";
import { startLoadGenerator } from "./bench/load-generator.js";
import { machineInfo } from "./bench/machine.js";
import { USAGE, isLoopback, parseOptions, publicOptions, type BenchOptions } from "./bench/options.js";
import { restockBenchSkus, seedStack, startStack, type Stack } from "./bench/orderly.js";
import { measureRelay } from "./bench/relay-rounds.js";
import { judgeGoals, markdownReport, summaryTable, type BenchResults } from "./bench/report.js";
import { RssSampler, type HeapSource } from "./bench/rss.js";
import { prepareRunning } from "./bench/running.js";
import { CREATE_ORDER_ID, ceilingTargets, readTargets, stackUnderTest, writeTargets, type OrderlyUnderTest } from "./bench/targets.js";

const log = (line: string) => console.log(line);
/** Profiles a service from inside (node refuses --cpu-prof in NODE_OPTIONS). */
const PROFILER_PRELOAD = fileURLToPath(new URL("./bench/cpu-profiler-preload.mjs", import.meta.url));

function watchStack(rss: RssSampler, stack: Stack): void {
  for (const name of ["gateway", "order", "inventory", "query"] as const) {
    // Each serves /metrics on its admin port (the gateway's default metrics prefixed).
    const heap: HeapSource = {
      url: () => `http://127.0.0.1:${stack.system[name].adminPort}/metrics`,
      metric: name === "gateway" ? "orderly_gateway_nodejs_heap_size_used_bytes" : "nodejs_heap_size_used_bytes",
    };
    rss.watch(`${stack.name} ${name}`, () => stack.system[name].child.pid, heap);
  }
  rss.watch(`${stack.name} nats-server`, () => stack.system.nats.child().pid);
}

async function run(options: BenchOptions): Promise<BenchResults> {
  await using cleanup = new Cleanup(() => process.exit(130));
  const started = new Date();
  const stamp = started.toISOString().replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
  const outDir = resolve(options.outDir);
  mkdirSync(outDir, { recursive: true });
  const profileDir = join(outDir, `${stamp}-profiles`);
  const machine = machineInfo(natsServerBinary());
  const notes: string[] = [];
  log(`Orderly bench ${stamp}: ${machine.nproc} CPUs (${machine.cpuModel}), Node.js ${machine.node}, load average ${machine.loadAverage1m.toFixed(2)}`);
  const rss = new RssSampler();
  cleanup.defer("RSS sampler", () => rss[Symbol.dispose]());

  log("starting the load generator and the ceilings…");
  const loader = cleanup.use("load generator", await startLoadGenerator());
  const hello = cleanup.use("hello ceiling", await startService("ceiling-hello", "scripts/bench/ceilings/hello-server.ts", {}));
  const leaf = cleanup.use("chain leaf", await startService("ceiling-leaf", "scripts/bench/ceilings/grpc-chain.ts", { CHAIN_ROLE: "leaf" }));
  const middle = cleanup.use(
    "chain middle",
    await startService("ceiling-middle", "scripts/bench/ceilings/grpc-chain.ts", { CHAIN_ROLE: "middle", CHAIN_NEXT: `127.0.0.1:${leaf.port}` }),
  );
  const front = cleanup.use(
    "chain front",
    await startService("ceiling-front", "scripts/bench/ceilings/grpc-chain.ts", { CHAIN_ROLE: "http", CHAIN_NEXT: `127.0.0.1:${middle.port}` }),
  );

  const stackEnv = { ...options.stackEnv, ...(options.profile ? { NODE_OPTIONS: `--import=${PROFILER_PRELOAD}`, BENCH_CPU_PROFILE_DIR: profileDir } : {}) };
  const stacks: Stack[] = [];
  const seeding: BenchResults["seeding"] = {};
  /** The stack the bench starts for the main figures; none when it measures a running Orderly. */
  let small: Stack | undefined;
  let underTest: OrderlyUnderTest;
  if (options.running) {
    // Its orders are for the reads: none are created when only the writes are measured.
    underTest = await prepareRunning(options.running, options.phases.includes("reads") ? options.smallOrders : 0, log);
    for (const p of underTest.processes) rss.watch(`running ${p.name}`, p.pid);
  } else {
    log(`starting Orderly with ${options.smallOrders.toLocaleString("en-US")} orders stored${options.profile ? ` (CPU profiles in ${profileDir})` : ""}…`);
    small = cleanup.use("Orderly (small)", await startStack("10k", stackEnv));
    stacks.push(small);
    watchStack(rss, small);
    await restockBenchSkus(small.system);
    seeding.small = await seedStack(small, options.smallOrders);
    underTest = stackUnderTest(small);
  }
  // Orderly's targets authenticate as an admin; the ceilings get the same Authorization header (and ignore it).
  const ceilings = ceilingTargets({
    hello: { host: "127.0.0.1", port: hello.port },
    helloProcesses: [{ name: "hello", pid: () => hello.child.pid }],
    chain: { host: "127.0.0.1", port: front.port },
    chainProcesses: [
      { name: "http front", pid: () => front.child.pid },
      { name: "gRPC middle", pid: () => middle.child.pid },
      { name: "gRPC leaf", pid: () => leaf.child.pid },
    ],
    token: underTest.token,
  });

  const http: HttpTargetResult[] = [];
  const settings = { rounds: options.rounds, durationS: options.durationS, warmupS: options.warmupS, connections: options.connections, log };

  if (options.phases.includes("reads")) {
    // The growth check's large side: a second stack the bench starts and seeds (not with a running Orderly).
    let large: Stack | undefined;
    if (small) {
      log(`starting a second Orderly and seeding ${options.largeOrders.toLocaleString("en-US")} orders (growth check)…`);
      large = cleanup.use("Orderly (large)", await startStack("large", stackEnv));
      stacks.push(large);
      watchStack(rss, large);
      seeding.large = await seedStack(large, options.largeOrders);
      log(`  seeded in ${(seeding.large.ms / 1000).toFixed(1)} s`);
    }
    log(`reads: bare node:http vs GET order / inventory item / customer's orders${large ? ", 10k vs large stored" : ""}…`);
    rss.setPhase("reads");
    http.push(...(await measureHttpRounds(loader, readTargets(underTest, large && stackUnderTest(large), ceilings.hello), settings, rss)));
    rss.setPhase("idle");
    await large?.[Symbol.asyncDispose]();
  }

  let lag: BenchResults["lag"];
  if (options.phases.includes("writes")) {
    log("writes: bare HTTP→gRPC→gRPC chain vs POST /v1/orders…");
    rss.setPhase("writes");
    const writes = await measureHttpRounds(loader, writeTargets(underTest, ceilings.chain), settings, rss);
    rss.setPhase("idle");
    http.push(...writes);
    // The lag is read from the services' databases: only a stack the bench started has them at hand.
    if (small) {
      const { dataDir } = small.system;
      const windows = writes.find((t) => t.id === CREATE_ORDER_ID)!.rounds.map((r) => r.halfWindow);
      const from = Math.min(...windows.map((w) => w.start));
      await waitFor(() => unappliedSince(dataDir, from) === 0, "the read model to apply every order event", 60_000, 200).catch(() => {
        notes.push("Some order events of the half-load runs were not applied by the read model within 60 s of the end of the writes phase.");
      });
      lag = commitToReadModelLag(dataDir, windows);
      log(`  commit → read-model lag at half load: p50 ${lag.p50} p95 ${lag.p95} p99 ${lag.p99} ms (${lag.events} events)`);
    }
  }

  let relay: BenchResults["relay"];
  if (options.phases.includes("relay") && small) {
    log("relay: JetStream publish ceiling vs the outbox relay draining a backlog…");
    const ceilingNats = cleanup.use("ceiling nats-server", await startNats());
    rss.setPhase("relay");
    const createOrder = writeTargets(underTest, ceilings.chain).find((t) => t.id === CREATE_ORDER_ID)!;
    relay = await measureRelay(
      small,
      { url: ceilingNats.url, pid: () => ceilingNats.child().pid },
      loader,
      createOrder,
      { rounds: Math.max(2, Math.min(options.rounds, 3)), orders: options.relayOrders, publishCount: options.publishCount, warmup: options.warmupS > 0, log },
      rss,
    );
    rss.setPhase("idle");
  }

  // Stop the stack now: profiles are written when the services exit.
  await small?.[Symbol.asyncDispose]();
  const profiles: BenchResults["profiles"] = [];
  if (options.profile) {
    const byService = new Map<string, { file: string; summary: ReturnType<typeof summarizeProfile> }>();
    const serviceOf = (pid: number) => {
      for (const stack of stacks) {
        const name = stack.pids.get(pid);
        if (name) return `${stack.name} ${name}`;
      }
      return undefined;
    };
    const files = (() => {
      try {
        return readdirSync(profileDir);
      } catch {
        return [];
      }
    })();
    for (const file of files.filter((f) => f.endsWith(".cpuprofile"))) {
      const pid = Number(/^(\d+)\.cpuprofile$/.exec(file)?.[1]);
      const service = serviceOf(pid);
      if (!service) continue;
      const summary = summarizeProfile(join(profileDir, file));
      const best = byService.get(service);
      if (!best || summary.busyMs > best.summary.busyMs) byService.set(service, { file, summary });
    }
    for (const [service, { summary }] of byService) profiles.push({ service, summary });
  }

  notes.push(
    `Load comes from a separate process (scripts/bench/loader-process.ts, raw keep-alive HTTP/1.1 sockets): saturation is a closed loop of ${options.connections} connections that lets requests in flight finish at the end; half load is an open loop at a constant rate with latency from each request's due time (no coordinated omission).`,
    "Every request carries `authorization: Bearer <admin token>`, the ceilings' too (they ignore it). Orderly's figures include bearer-token authentication (a verified token is cached, so a steady client costs a map lookup), the signed principal on each gRPC hop and protovalidate request validation in the services.",
    "On this 2-CPU machine the load generator shares the CPUs with the processes under test; its CPU use is in the per-round table. Orderly's reads run through 2 processes (gateway → query/inventory) and writes through 3, so they compete with the load generator more than a one-process ceiling does.",
  );
  if (options.running) {
    const created = underTest.storedOrders;
    notes.push(
      `Orderly was the running system at ${options.running.gatewayUrl}. The bench restocked its BENCH-SKU-* items` +
        (created ? `, created ${created.toLocaleString("en-US")} orders there for the reads` : "") +
        (options.phases.includes("writes") ? ", and its POST /v1/orders runs left their orders there too" : "") +
        ". Not measured against a running system: the growth check (it seeds databases), the outbox relay (it stops NATS and the services) and the commit → read-model lag (it reads the services' databases).",
      underTest.processes.length
        ? `CPU per request counts ${underTest.processes.map((p) => p.name).join(", ")} (their pids from --admin's /status.json), not its nats-server, which a stack the bench starts counts.`
        : "No CPU per request of Orderly: without --admin, or with none of its processes on this machine, the bench does not know them.",
      ...(isLoopback(options.running.host) ? [] : ["The gateway is not at a loopback address: if it runs on another machine, the ratios compare it, and the network to it, with ceilings measured here."]),
    );
  }
  for (const t of http) {
    if (t.errorShare > 0.001) notes.push(`${t.label}: ${(t.errorShare * 100).toFixed(2)}% of responses were non-2xx or errors.`);
  }
  const finished = new Date();
  const results: BenchResults = {
    date: started.toISOString(),
    finishedAt: finished.toISOString(),
    machine,
    loadAverageAtEnd: loadavg()[0]!,
    // The results name a running system, never its token.
    options: publicOptions(options),
    seeding,
    http,
    relay,
    lag,
    rss: rss.results(),
    profiles,
    goals: judgeGoals(http, relay, lag, options),
    notes,
  };
  writeFileSync(join(outDir, `${stamp}.json`), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(outDir, `${stamp}.svg`), benchChart(results));
  writeFileSync(join(outDir, `${stamp}.md`), markdownReport(results, `${stamp}.svg`));
  log(`\n${summaryTable(results)}\n`);
  for (const g of results.goals) log(`${g.met === undefined ? "–" : g.met ? "MET   " : "MISSED"} ${g.goal}: ${g.measured} (target ${g.target}; ${g.margin})`);
  log(`\nreport: ${join(outDir, `${stamp}.md`)}\n        ${join(outDir, `${stamp}.svg`)} (chart)\n        ${join(outDir, `${stamp}.json`)}  (${((finished.getTime() - started.getTime()) / 1000).toFixed(0)} s)`);
  return results;
}

let options: BenchOptions | "help";
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(2);
}
if (options === "help") {
  console.log(USAGE);
} else {
  run(options).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error("bench failed:", error);
      process.exit(1);
    },
  );
}
