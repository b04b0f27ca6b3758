/**
 * A running Orderly as the bench's target (`npm run bench -- --gateway URL`):
 * checked ready, restocked and given orders through its own API, and its
 * processes found on this machine when its gateway's admin server names
 * them (then CPU per request is measured too).
 */
import { existsSync, readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import type { DevTokens } from "../dev-security.js";
import type { SystemStatus } from "../../gateway/system-status.js";
import { api, reasonOf, type ApiResponse } from "../../test/helpers/system.js";
import { BENCH_SKUS, restockBenchSkus } from "./orderly.js";
import { hostOf, isLoopback, type RunningOptions } from "./options.js";
import { processStartMs, type Watched } from "./proc.js";
import { seedCustomerCount } from "./seed-data.js";
import type { OrderlyUnderTest } from "./targets.js";

/** Calls made at once while preparing. */
const CONCURRENCY = 32;
/** How long one call may take while preparing. */
const CALL_TIMEOUT_MS = 30_000;
/** How long the query side may take to have every order created (ms). */
const READABLE_WITHIN_MS = 120_000;
/**
 * How long before its /status.json's start a service's process may have
 * started (ms): it counts its uptime from when its status reporter was made,
 * after its modules loaded; the uptime is in whole seconds, hence the slack
 * the other way.
 */
const STARTUP_MS = { most: 60_000, least: -2_000 };

/** An admin's token: --token, else the admin of the dev-tokens.json `npm start` writes. */
function adminToken(options: RunningOptions): string {
  if (options.token !== undefined) return options.token;
  if (!existsSync(options.tokenFile)) throw new Error(`no --token, and no ${options.tokenFile} (npm start writes it): pass an admin's bearer token with --token`);
  return (JSON.parse(readFileSync(options.tokenFile, "utf8")) as DevTokens).admin;
}

/** What went wrong with a call, with what to change when the answer says. */
function refused(what: string, response: ApiResponse): Error {
  const reason = reasonOf(response.body);
  const hint =
    reason === "RATE_LIMITED"
      ? " (its rate limit: start it with RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000)"
      : response.status === 401 || response.status === 403
        ? " (the token is not an admin's of this system: --token)"
        : "";
  return new Error(`${what} answered ${response.status}${hint}: ${response.text.slice(0, 300)}`);
}

/**
 * The services' processes that run on this machine, from the gateway's admin
 * /status.json: a pid counts only when the admin server is at a loopback
 * address and the process with that pid here started when the service did.
 */
async function localProcesses(adminUrl: string): Promise<Watched[]> {
  if (!isLoopback(hostOf(adminUrl))) return [];
  const response = await fetch(`${adminUrl}/status.json`, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`${adminUrl}/status.json answered ${response.status}`);
  const status = (await response.json()) as SystemStatus;
  const now = Date.now();
  return status.processes.flatMap((p) => {
    const pid = p.status?.pid;
    const started = pid === undefined ? undefined : processStartMs(pid);
    const reported = p.status === undefined ? NaN : now - p.status.uptimeSeconds * 1000;
    const before = started === undefined ? NaN : reported - started;
    return before >= STARTUP_MS.least && before <= STARTUP_MS.most ? [{ name: p.name, pid: () => pid }] : [];
  });
}

/**
 * Runs `work(k, signal)` for k in [0, count), `CONCURRENCY` at a time; the
 * first failure aborts `signal` for the calls in flight, starts no more, and
 * is thrown.
 */
async function forEachConcurrently(count: number, work: (k: number, signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  let next = 0;
  const worker = async () => {
    while (!stop.signal.aborted && next < count) {
      try {
        await work(next++, stop.signal);
      } catch (error) {
        stop.abort();
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, worker));
}

/**
 * Gets a running Orderly ready for the bench: ready, the bench SKUs
 * restocked, and `orders` orders created (ten per customer, for customers
 * new to it) and readable on the query side.
 */
export async function prepareRunning(options: RunningOptions, orders: number, log: (line: string) => void): Promise<OrderlyUnderTest> {
  const token = adminToken(options);
  const call = async (method: string, path: string, body?: unknown, stop?: AbortSignal) => {
    const timeout = AbortSignal.timeout(CALL_TIMEOUT_MS);
    return api(options.gatewayUrl, method, path, { headers: { authorization: `Bearer ${token}` }, body, signal: stop ? AbortSignal.any([stop, timeout]) : timeout });
  };
  const ready = await call("GET", "/readyz").catch((error: unknown) => {
    throw new Error(`the gateway at ${options.gatewayUrl} did not answer: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (ready.status !== 200) throw refused(`${options.gatewayUrl}/readyz`, ready);
  await restockBenchSkus({
    api: async (method, path, o) => {
      const response = await call(method, path, o?.body);
      if (response.status !== 200) throw refused(`${method} ${path}`, response);
      return response;
    },
  });

  // Customers of this run only, so that a customer's list holds ten orders however often the bench ran against the system.
  const prefix = `bench-r${Date.now().toString(36)}-`;
  const customers = seedCustomerCount(orders);
  const ids: string[] = [];
  if (orders > 0) {
    log(`creating ${orders.toLocaleString("en-US")} orders for ${customers.toLocaleString("en-US")} customers through ${options.gatewayUrl}…`);
    const started = performance.now();
    await forEachConcurrently(orders, async (k, stop) => {
      const response = await call("POST", "/v1/orders", { customerId: `${prefix}${k % customers}`, items: [{ sku: BENCH_SKUS[k % BENCH_SKUS.length], quantity: 1 }] }, stop);
      if (response.status !== 200 || typeof response.body?.id !== "string") throw refused("POST /v1/orders", response);
      ids.push(response.body.id as string);
    });
    log(`  created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    // The reads go to the query side, which applies the orders' events in its own time: wait until it has every one (404 until then).
    // Any other answer stops the bench at once, saying why.
    const deadline = Date.now() + READABLE_WITHIN_MS;
    let unread = ids;
    for (;;) {
      const pass = unread;
      const answered = new Array<boolean>(pass.length);
      await forEachConcurrently(pass.length, async (k, stop) => {
        const response = await call("GET", `/v1/orders/${pass[k]}`, undefined, stop);
        if (response.status !== 200 && response.status !== 404) throw refused(`GET /v1/orders/${pass[k]}`, response);
        answered[k] = response.status === 200;
      });
      unread = pass.filter((_, k) => !answered[k]);
      if (unread.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${unread.length} of the orders created were still not readable after ${READABLE_WITHIN_MS / 1000} s`);
      await delay(200);
    }
    // Those reads left the orders in the gateway's read cache; the uncached reads ask for fresh answers (no-cache).
    log("  readable");
  }

  const processes = options.adminUrl === undefined ? [] : await localProcesses(options.adminUrl);
  if (options.adminUrl !== undefined) log(`  its processes on this machine: ${processes.map((p) => p.name).join(", ") || "none"}`);
  return {
    endpoint: { host: options.host, port: options.port },
    token,
    processes,
    storedOrders: ids.length,
    orderReads: (hotSet) => ({ kind: "order-ids", ids, ...(hotSet === undefined ? {} : { hotSet }) }),
    customerReads: { kind: "customer-orders", customerPrefix: prefix, customers },
  };
}
