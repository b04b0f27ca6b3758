/**
 * Instructions per `POST /v1/orders` in one service of a real stack, under
 * callgrind: what instructions.sh does for a cache hit, for the write path.
 *
 *   node --import tsx scripts/bench/service-instructions.ts order|inventory|query|gateway [--warm 90] [--duration 40] [--out dir]
 *
 * Starts a stack (test/helpers/system.ts), restocks the bench SKUs, then
 * starts the named service again (same environment and port) under
 * `valgrind --tool=callgrind` with instrumentation off. Eight clients create
 * orders through the gateway for --warm seconds (default 90: the service runs
 * ~50x slower), then for --duration seconds (default 40) with instrumentation
 * on. Prints the main thread's instructions per order answered 2xx, and the
 * top functions per order (callgrind-functions.ts). The service's share of
 * the events (relay, consumers) is in the count, as it is under load.
 *
 * The slowed service sets the pace of the whole stack. Under valgrind the
 * inventory is slow enough that the order service's reservations time out
 * and orders take the asynchronous path (202): its figures are then of that
 * path, which the summary line's count of 202 answers shows.
 * Needs valgrind (apt-get install -y valgrind).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { BENCH_SKUS, restockBenchSkus, startStack, waitReady } from "./orderly.js";

const entries = { order: "services/order/main.ts", inventory: "services/inventory/main.ts", query: "services/query/main.ts", gateway: "gateway/main.ts" };
const usage = "usage: service-instructions.ts order|inventory|query|gateway [--warm 90] [--duration 40] [--out dir]";
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { warm: { type: "string", default: "90" }, duration: { type: "string", default: "40" }, out: { type: "string" } },
});
const service = positionals[0] as keyof typeof entries;
const warmMs = Number(values.warm) * 1000;
const durationMs = Number(values.duration) * 1000;
if (positionals.length !== 1 || !(service in entries) || !(warmMs >= 0) || !(durationMs > 0)) throw new Error(usage);
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
  { env: { ...process.env, LOG_LEVEL: "info", ...system.env.common, ...system.env[service] }, stdio: ["ignore", "pipe", "pipe"] },
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
};
await using _valgrind = { [Symbol.asyncDispose]: stopValgrind };
valgrind.stderr!.resume();
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`${service} under valgrind did not report listening within 10 minutes`)), 10 * 60_000);
  createInterface({ input: valgrind.stdout! }).on("line", (line) => {
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
let counting = false;
let stopped = false;
const client = async (n: number) => {
  for (let i = 0; !stopped; i++) {
    const body = { customerId: `instructions-${n}-${i % 50}`, items: [{ sku: BENCH_SKUS[(n + i) % BENCH_SKUS.length], quantity: 1 }] };
    const status = await system.api("POST", "/v1/orders", { body }).then((response) => response.status, () => 0);
    if (counting) answers.set(status, (answers.get(status) ?? 0) + 1);
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

const ok = [...answers].filter(([status]) => status >= 200 && status < 300).reduce((sum, [, n]) => sum + n, 0);
console.log(`${service}: answers while counted ${JSON.stringify(Object.fromEntries(answers))}; callgrind files, perf map in ${out}`);
if (ok === 0) throw new Error("no order was answered 2xx while counting");
if (!existsSync(join(out, "perf.map"))) throw new Error(`V8 wrote no perf map (${perfMap})`);
// With --separate-threads, the dump's main thread is callgrind.out.1-01 (the first dump of the main thread).
console.log(
  execFileSync(process.execPath, ["--import", "tsx", "scripts/bench/callgrind-functions.ts", join(out, "callgrind.out.1-01"), join(out, "perf.map"), String(ok)], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
  }),
);
