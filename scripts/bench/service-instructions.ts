/**
 * Instructions per request in one service of a real stack, under callgrind:
 * what instructions.sh does for the gateway's handler alone, for a whole
 * process as it runs (its server options, tracing, NATS subscription…).
 *
 *   node --import tsx scripts/bench/service-instructions.ts order|inventory|query|gateway [--load write|read] [--warm 90] [--duration 40] [--out dir]
 *
 * `--load write` (the default) creates orders (`POST /v1/orders`); `--load
 * read` (gateway only: the cache answers, no service sees the reads) reads
 * 64 orders created first, over and over (`GET /v1/orders/{id}`: the
 * gateway's read-cache hits, as in the bench's cached read).
 *
 * Starts a stack (test/helpers/system.ts), restocks the bench SKUs, then
 * starts the named service again (same environment and port) under
 * `valgrind --tool=callgrind` with instrumentation off. Eight clients send
 * the load through the gateway for --warm seconds (default 90: the service
 * runs ~50x slower), then for --duration seconds (default 40) with
 * instrumentation on. Prints the main thread's instructions per request
 * answered 2xx, and the top functions per request (callgrind-functions.ts). The service's share of
 * the events (relay, consumers) is in the count, as it is under load.
 *
 * The slowed service sets the pace of the whole stack. Under valgrind the
 * inventory is slow enough that the order service's reservations time out
 * and orders take the asynchronous path (202): its figures are then of that
 * path, which the summary line's count of 202 answers shows.
 * Needs valgrind (apt-get install -y valgrind).
 */
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { BENCH_SKUS, restockBenchSkus, startStack, waitReady } from "./orderly.js";

const entries = { order: "services/order/main.ts", inventory: "services/inventory/main.ts", query: "services/query/main.ts", gateway: "gateway/main.ts" };
const usage = "usage: service-instructions.ts order|inventory|query|gateway [--load write|read (gateway only)] [--warm 90] [--duration 40] [--out dir]";
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { load: { type: "string", default: "write" }, warm: { type: "string", default: "90" }, duration: { type: "string", default: "40" }, out: { type: "string" } },
});
const service = positionals[0] as keyof typeof entries;
const warmMs = Number(values.warm) * 1000;
const durationMs = Number(values.duration) * 1000;
const load = values.load;
if (positionals.length !== 1 || !(service in entries) || (load !== "write" && !(load === "read" && service === "gateway")) || !(warmMs >= 0) || !(durationMs > 0)) throw new Error(usage);
for (const tool of ["valgrind", "callgrind_control", "callgrind_annotate"]) {
  try {
    execFileSync("which", [tool], { stdio: "ignore" });
  } catch {
    throw new Error(`${tool} is missing: apt-get install -y valgrind`);
  }
}
const out = values.out ?? mkdtempSync(join(tmpdir(), `orderly-instructions-${service}-`));
mkdirSync(out, { recursive: true });

await using stack = await startStack("instructions");
const { system } = stack;
await waitReady(system);
await restockBenchSkus(system);
/** The orders `--load read` reads, created before the service is slowed. */
const hot = load === "read" ? await Promise.all(Array.from({ length: 64 }, (_, n) => createOrder(`instructions-hot-${n}`, n))) : [];
/**
 * For `--load read`, the gateway's cached reads live ten minutes: under callgrind a background
 * refresh takes longer than the last fifth of the usual 5 s TTL, and entries would expire under
 * their readers. Nothing changes the hot orders, so what is counted is hits.
 */
const readEnv = load === "read" ? { GATEWAY_CACHE_TTL_MS: "600000" } : {};
await system[service].stop();
const valgrind = spawn(
  "valgrind",
  [
    "--tool=callgrind",
    "--smc-check=all-non-file",
    "--instr-atstart=no",
    "--separate-threads=yes",
    `--callgrind-out-file=${join(out, "callgrind.out")}`,
    process.execPath,
    "--perf-basic-prof",
    "--import",
    "tsx",
    entries[service],
  ],
  { env: { ...process.env, LOG_LEVEL: "info", ...system.env.common, ...system.env[service], ...readEnv }, stdio: ["ignore", "pipe", "pipe"] },
);
// valgrind runs node in its own process: V8's perf map is named after valgrind's pid.
const perfMap = `/tmp/perf-${valgrind.pid}.map`;
const exited = new Promise<void>((resolve) => valgrind.once("exit", () => resolve()));
/** Stops the service (SIGKILL after a minute: it runs slowly) and keeps its perf map in `out`. */
const stopValgrind = async () => {
  if (valgrind.exitCode === null && valgrind.signalCode === null) {
    valgrind.kill("SIGTERM");
    const timer = setTimeout(() => valgrind.kill("SIGKILL"), 60_000);
    await exited;
    clearTimeout(timer);
  }
  if (existsSync(perfMap)) renameSync(perfMap, join(out, "perf.map"));
  serviceLog.end();
};
await using _valgrind = { [Symbol.asyncDispose]: stopValgrind };
valgrind.stderr!.resume();
/** The service's log lines, kept in `out`. */
const serviceLog = createWriteStream(join(out, "service.log"));
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`${service} under valgrind did not report listening within 10 minutes`)), 10 * 60_000);
  createInterface({ input: valgrind.stdout! }).on("line", (line) => {
    serviceLog.write(`${line}\n`);
    if (line.includes('"listening"')) {
      clearTimeout(timer);
      resolve();
    }
  });
  void exited.then(() => {
    clearTimeout(timer);
    reject(new Error(`${service} under valgrind exited before listening`));
  });
});
await waitReady(system, 10 * 60_000);

/** Answers by status (0: no answer), counted while `counting`. */
const answers = new Map<number, number>();
/** Answers from the gateway's read cache (`x-cache: hit`) while `counting`. */
let hits = 0;
let counting = false;
let stopped = false;
const client = async (n: number) => {
  for (let i = 0; !stopped; i++) {
    const answer = load === "read" ? system.api("GET", `/v1/orders/${hot[(n * 8 + i) % hot.length]}`) : createOrderAnswer(`instructions-${n}-${i % 50}`, n + i);
    const { status, hit } = await answer.then((response) => ({ status: response.status, hit: response.headers.get("x-cache") === "hit" }), () => ({ status: 0, hit: false }));
    if (!counting) continue;
    answers.set(status, (answers.get(status) ?? 0) + 1);
    if (hit) hits++;
  }
};
const clients = Array.from({ length: 8 }, (_, n) => client(n));
const control = (...args: string[]) => execFileSync("callgrind_control", [...args, String(valgrind.pid)], { stdio: "ignore" });
try {
  await delay(warmMs);
  control("-i", "on");
  control("-z");
  counting = true;
  await delay(durationMs);
  counting = false;
  control("-d");
  control("-i", "off");
} finally {
  stopped = true;
  await Promise.all(clients);
}
await stopValgrind();

/** `POST /v1/orders` of one bench SKU for a customer. */
function createOrderAnswer(customerId: string, n: number) {
  return system.api("POST", "/v1/orders", { body: { customerId, items: [{ sku: BENCH_SKUS[n % BENCH_SKUS.length], quantity: 1 }] } });
}

/** The id of an order created for a customer. */
async function createOrder(customerId: string, n: number): Promise<string> {
  const response = await createOrderAnswer(customerId, n);
  if (response.status !== 200 && response.status !== 202) throw new Error(`creating an order answered ${response.status}`);
  return (response.body as { id: string }).id;
}

const ok = [...answers].filter(([status]) => status >= 200 && status < 300).reduce((sum, [, n]) => sum + n, 0);
console.log(`${service}, ${load}: answers while counted ${JSON.stringify(Object.fromEntries(answers))}, ${hits} of them cache hits; callgrind files, perf map and the service's log in ${out}`);
if (ok === 0) throw new Error("no order was answered 2xx while counting");
if (!existsSync(join(out, "perf.map"))) throw new Error(`V8 wrote no perf map (${perfMap})`);
// With --separate-threads, the dump's main thread is callgrind.out.1-01 (the first dump of the main thread).
console.log(
  execFileSync(process.execPath, ["--import", "tsx", "scripts/bench/callgrind-functions.ts", join(out, "callgrind.out.1-01"), join(out, "perf.map"), String(ok)], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
  }),
);
