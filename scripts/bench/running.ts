/**
 * A running Orderly as the bench's target (`npm run bench -- --gateway URL`):
 * checked ready, restocked and given orders through its own API, and its
 * processes found on this machine when its gateway's admin server names
 * them (then CPU per request is measured too).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DevTokens } from "../dev-security.js";
import { api, type ApiResponse } from "../../test/helpers/system.js";
import { waitFor } from "../../test/helpers/processes.js";
import type { SystemStatus } from "../../gateway/system-status.js";
import { BENCH_SKUS, restockBenchSkus } from "./orderly.js";
import type { RunningOptions } from "./options.js";
import type { Watched } from "./proc.js";
import { SEED_ORDERS_PER_CUSTOMER } from "./seed-data.js";
import type { OrderlyUnderTest } from "./targets.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Orders created at once while preparing. */
const CONCURRENCY = 32;
/** The prefix of the customers the bench's orders belong to (the POST target's are "bench-c"). */
const CUSTOMER_PREFIX = "bench-r";

/** An admin's token: --token, else the admin of the dev-tokens.json `npm start` writes. */
function adminToken(options: RunningOptions): string {
  if (options.token !== undefined) return options.token;
  const file = join(resolve(ROOT, process.env.ORDERLY_DATA_DIR ?? ".data"), "dev-tokens.json");
  if (!existsSync(file)) throw new Error(`no --token, and no ${file} (npm start writes it): pass an admin's bearer token with --token`);
  return (JSON.parse(readFileSync(file, "utf8")) as DevTokens).admin;
}

/** What went wrong with a call, with the hint a refusal needs. */
function refused(what: string, response: ApiResponse): Error {
  const hint =
    response.status === 429
      ? " (the gateway's rate limit: start it with RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000)"
      : response.status === 401 || response.status === 403
        ? " (the token is not an admin's of this system: --token)"
        : "";
  return new Error(`${what} answered ${response.status}${hint}: ${response.text.slice(0, 300)}`);
}

/** The services' processes that run on this machine, from the gateway's admin /status.json. */
async function localProcesses(adminUrl: string): Promise<Watched[]> {
  const response = await fetch(`${adminUrl}/status.json`, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`${adminUrl}/status.json answered ${response.status}`);
  const status = (await response.json()) as SystemStatus;
  return status.processes.flatMap((p) => {
    const pid = p.status?.pid;
    return pid !== undefined && existsSync(`/proc/${pid}`) ? [{ name: p.name, pid: () => pid }] : [];
  });
}

/**
 * Gets a running Orderly ready for the bench: ready, the bench SKUs restocked,
 * `orders` orders created (for `orders / 10` customers) and readable.
 */
export async function prepareRunning(options: RunningOptions, orders: number, log: (line: string) => void): Promise<OrderlyUnderTest> {
  const token = adminToken(options);
  const call = (method: string, path: string, body?: unknown) => api(options.gatewayUrl, method, path, { headers: { authorization: `Bearer ${token}` }, body });
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

  const customers = Array.from({ length: Math.max(1, Math.ceil(orders / SEED_ORDERS_PER_CUSTOMER)) }, (_, k) => `${CUSTOMER_PREFIX}${k}`);
  log(`creating ${orders.toLocaleString("en-US")} orders for ${customers.length.toLocaleString("en-US")} customers through ${options.gatewayUrl}…`);
  const started = performance.now();
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let k = next++; k < orders; k = next++) {
      const response = await call("POST", "/v1/orders", { customerId: customers[k % customers.length], items: [{ sku: BENCH_SKUS[k % BENCH_SKUS.length], quantity: 1 }] });
      if (response.status !== 200 || typeof response.body?.id !== "string") throw refused("POST /v1/orders", response);
      ids.push(response.body.id as string);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  log(`  created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  // The reads go to the query side: wait until it has the last order created.
  const last = ids.at(-1)!;
  await waitFor(async () => (await call("GET", `/v1/orders/${last}`)).status === 200, `order ${last} to be readable`, 60_000, 100);

  const processes = options.adminUrl === undefined ? [] : await localProcesses(options.adminUrl);
  if (options.adminUrl !== undefined) log(`  processes on this machine: ${processes.map((p) => p.name).join(", ") || "none"}`);
  const gateway = new URL(options.gatewayUrl);
  return {
    endpoint: { host: gateway.hostname, port: Number(gateway.port || 80) },
    token,
    processes,
    storedOrders: ids.length,
    orderReads: (hotSet) => ({ kind: "order-ids", ids, ...(hotSet === undefined ? {} : { hotSet }) }),
    customerReads: { kind: "customer-ids", ids: customers },
  };
}
