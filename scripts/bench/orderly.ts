/**
 * Orderly stacks for the bench, started with the tests' own helper
 * (test/helpers/system.ts: nats-server, inventory, order, query and gateway
 * as real processes on free ports with a temp data directory).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startSystem, type System } from "../../test/helpers/system.js";
import { waitFor } from "../../test/helpers/processes.js";
import { seedCustomerCount, seedOrderId } from "./seed-data.js";
import type { SeedSummary } from "../seed-orders.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** SKUs the bench restocks on a stack for GET /v1/inventory/{sku} and POST /v1/orders. */
export const BENCH_SKUS = Array.from({ length: 32 }, (_, k) => `BENCH-SKU-${k}`);

/** A stack and what it holds; disposing it stops it and deletes its data (safe to repeat). */
export interface Stack extends AsyncDisposable {
  name: string;
  system: System;
  seededOrders: number;
  seededCustomers: number;
  /** pid → service name of every service process it ran (a restart adds one). */
  pids: Map<number, string>;
}

/** Records the pids of a stack's service processes (call after a restart). */
export function recordPids(stack: Stack): void {
  for (const name of ["inventory", "order", "query", "gateway"] as const) {
    const pid = stack.system[name].child.pid;
    if (pid !== undefined) stack.pids.set(pid, name);
  }
}

/** Starts a stack (LOG_LEVEL stays info: the helper waits for the services' info-level "listening" line; requests log at debug). */
export async function startStack(name: string, env: Record<string, string> = {}): Promise<Stack> {
  const system = await startSystem(env);
  const stack: Stack = {
    name,
    system,
    seededOrders: 0,
    seededCustomers: 0,
    pids: new Map(),
    [Symbol.asyncDispose]: () => system[Symbol.asyncDispose](),
  };
  recordPids(stack);
  return stack;
}

/** Waits until the gateway says every service is ready. */
export async function waitReady(system: System, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => (await system.api("GET", "/readyz")).status === 200, "the gateway to be ready", timeoutMs, 100);
}

/** Restocks the bench SKUs with a million units each (enough for every order a run creates). */
export async function restockBenchSkus(system: Pick<System, "api">): Promise<void> {
  for (const sku of BENCH_SKUS) {
    const response = await system.api("POST", `/v1/inventory/${sku}:restock`, {
      body: { quantity: 1_000_000, name: `Bench item ${sku}`, unitPriceMinor: "1299", currencyCode: "USD" },
    });
    if (response.status !== 200) throw new Error(`restock of ${sku} failed: ${response.status} ${response.text}`);
  }
}

/** Runs scripts/seed-orders.ts in its own process. */
function runSeeder(dataDir: string, orders: number): Promise<SeedSummary> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "scripts/seed-orders.ts", "--data-dir", dataDir, "--orders", String(orders)],
      { cwd: ROOT, timeout: 15 * 60_000, maxBuffer: 1 << 20, env: { ...process.env, NODE_OPTIONS: "" } },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`seeding failed: ${error.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as SeedSummary);
        } catch {
          reject(new Error(`seeding printed no summary:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

/**
 * Stops the order and query services, seeds `orders` orders into their
 * databases, starts them again and waits until a seeded order is served.
 */
export async function seedStack(stack: Stack, orders: number): Promise<SeedSummary> {
  const { system } = stack;
  await Promise.all([system.order.stop(), system.query.stop()]);
  const summary = await runSeeder(system.dataDir, orders);
  await system.restart("order");
  await system.restart("query");
  recordPids(stack);
  stack.seededOrders = orders;
  stack.seededCustomers = seedCustomerCount(orders);
  await waitReady(system);
  const probe = seedOrderId(orders - 1);
  await waitFor(async () => (await system.api("GET", `/v1/orders/${probe}`)).status === 200, `seeded order ${probe} to be served`, 30_000, 100);
  return summary;
}
