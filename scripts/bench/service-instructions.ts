/**
 * Instructions per request in one service of a real stack, under callgrind:
 * what instructions.ts does for the gateway's handler alone, for a whole
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
 * `valgrind --tool=callgrind` with instrumentation off (callgrind.ts). Eight clients send
 * the load through the gateway for --warm seconds (default 90: the service
 * runs ~50x slower), then for --duration seconds (default 40) with
 * instrumentation on. Prints the main thread's instructions per request
 * answered 2xx, and the top functions per request (callgrind-functions.ts). The service's share of
 * the events (relay, consumers) is in the count, as it is under load.
 *
 * The slowed service sets the pace of the whole stack. Its budgets are
 * stretched to match (STRETCHED_BUDGETS): with the usual ones the order
 * service's reservations from a slowed inventory time out and orders take the
 * asynchronous path (202), which is not the path the bench's orders take.
 * The summary line counts the answers by status.
 * Needs valgrind (apt-get install -y valgrind).
 */
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { outputDirectory, requireTools, startUnderCallgrind } from "./callgrind.js";
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
requireTools();
const out = outputDirectory(values.out, service);

/**
 * Budgets for a stack one of whose services runs ~50x slower: a request's
 * deadline and a reservation attempt's, long enough that an order is reserved
 * while its client waits (REQUEST_TIMEOUT_MS is longer still).
 */
const STRETCHED_BUDGETS = { MAX_REQUEST_TIMEOUT_MS: "50000", DEFAULT_DEADLINE_MS: "50000", INVENTORY_ATTEMPT_TIMEOUT_MS: "25000" };
await using stack = await startStack("instructions", STRETCHED_BUDGETS);
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
await using valgrind = startUnderCallgrind(["--import", "tsx", entries[service]], {
  env: { ...process.env, LOG_LEVEL: "info", ...system.env.common, ...system.env[service], ...readEnv },
  out,
});
await valgrind.line((line) => line.includes('"listening"'), 10 * 60_000);
await waitReady(system, 10 * 60_000);

/** A request not answered by then counts as no answer (status 0), so a hung one cannot hold the stop up. */
const REQUEST_TIMEOUT_MS = 60_000;
/** Answers by status (0: no answer), counted while `counting`. */
const answers = new Map<number, number>();
/** Answers from the gateway's read cache (`x-cache: hit`) while `counting`. */
let hits = 0;
let counting = false;
let stopped = false;
const client = async (n: number) => {
  for (let i = 0; !stopped; i++) {
    const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const answer = load === "read" ? system.api("GET", `/v1/orders/${hot[(n * 8 + i) % hot.length]}`, { signal }) : createOrderAnswer(`instructions-${n}-${i % 50}`, n + i, signal);
    const { status, hit } = await answer.then((response) => ({ status: response.status, hit: response.headers.get("x-cache") === "hit" }), () => ({ status: 0, hit: false }));
    if (!counting) continue;
    answers.set(status, (answers.get(status) ?? 0) + 1);
    if (hit) hits++;
  }
};
const clients = Array.from({ length: 8 }, (_, n) => client(n));
try {
  await delay(warmMs);
  await valgrind.count(async () => {
    counting = true;
    await delay(durationMs);
    counting = false;
  });
} finally {
  stopped = true;
  await Promise.all(clients);
}
await valgrind.stop();

/** `POST /v1/orders` of one bench SKU for a customer. */
function createOrderAnswer(customerId: string, n: number, signal?: AbortSignal) {
  return system.api("POST", "/v1/orders", { body: { customerId, items: [{ sku: BENCH_SKUS[n % BENCH_SKUS.length], quantity: 1 }] }, signal });
}

/** The id of an order created for a customer. */
async function createOrder(customerId: string, n: number): Promise<string> {
  const response = await createOrderAnswer(customerId, n);
  if (response.status !== 200 && response.status !== 202) throw new Error(`creating an order answered ${response.status}`);
  return (response.body as { id: string }).id;
}

const ok = [...answers].filter(([status]) => status >= 200 && status < 300).reduce((sum, [, n]) => sum + n, 0);
console.log(`${service}, ${load}: answers while counted ${JSON.stringify(Object.fromEntries(answers))}, ${hits} of them cache hits; callgrind files, perf map, the service's output (output.log) in ${out}`);
if (ok === 0) throw new Error("no request was answered 2xx while counting");
console.log(valgrind.report(ok));
