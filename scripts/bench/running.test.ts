import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { freePort } from "../../shared/process/index.js";
import { startSystem, type System } from "../../test/helpers/system.js";
import { isLoopback, parseOptions, type BenchOptions, type RunningOptions } from "./options.js";
import { requestGenerator } from "./requests.js";
import { prepareRunning } from "./running.js";

/** The running options the command line gives for `args` (after --gateway). */
function running(gateway: string, ...args: string[]): RunningOptions {
  return (parseOptions(["--gateway", gateway, ...args]) as BenchOptions).running!;
}

describe("npm run bench -- --gateway: a running Orderly", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem();
  });
  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  test("is restocked and given orders through its API, and its processes are found through its admin server", async () => {
    const lines: string[] = [];
    const underTest = await prepareRunning(running(system.baseUrl, "--token", system.tokens.admin, "--admin", system.adminUrl), 40, (line) => lines.push(line));
    expect(underTest.endpoint).toEqual({ host: "127.0.0.1", port: system.gateway.port });
    // The report counts it as local (no note that the gateway may be elsewhere).
    expect(isLoopback(underTest.endpoint.host)).toBe(true);
    expect(underTest.storedOrders).toBe(40);

    // Every read the bench will make names an order that is there and readable now: one cycle visits each of the 40 once.
    // The reads that waited for them left them in the gateway's cache; the uncached reads ask for fresh answers.
    const next = requestGenerator(underTest.orderReads());
    const requests = Array.from({ length: 40 }, () => next());
    const paths = requests.map((request) => request.path);
    expect(new Set(paths).size).toBe(40);
    for (const request of requests) {
      const headers = Object.fromEntries((request.headers ?? "").split("\r\n").filter(Boolean).map((line) => line.split(": ") as [string, string]));
      const read = await system.api("GET", request.path, { headers });
      // No X-Cache header: answered by the query side, not from the cache.
      expect({ status: read.status, cache: read.headers.get("x-cache") }).toEqual({ status: 200, cache: null });
    }
    const hot = requestGenerator(underTest.orderReads(8));
    const hotPaths = new Set(Array.from({ length: 400 }, () => hot().path));
    expect(hotPaths.size).toBe(8);
    for (const path of hotPaths) expect(paths).toContain(path);

    // Ten orders per customer, as seeded stacks have; the SKUs restocked with a million units each, less what the orders took.
    const customers = requestGenerator(underTest.customerReads);
    const lists = await Promise.all(Array.from({ length: 4 }, () => system.api("GET", customers().path)));
    expect(new Set(lists.map((l) => l.body.orders[0].customerId)).size).toBe(4);
    for (const list of lists) expect(list.body.orders).toHaveLength(10);
    const item = await system.api("GET", "/v1/inventory/BENCH-SKU-0");
    // Orders 0 and 32 of the 40 took one unit each of BENCH-SKU-0 (the SKUs are taken in turn).
    expect({ available: item.body.available, reserved: item.body.reserved }).toEqual({ available: 1_000_000 - 2, reserved: 2 });

    // The services' pids, from the gateway's /status.json: the bench counts their CPU.
    const pids = Object.fromEntries(underTest.processes.map((p) => [p.name, p.pid()]));
    expect(pids).toEqual({
      gateway: system.gateway.child.pid,
      order: system.order.child.pid,
      inventory: system.inventory.child.pid,
      query: system.query.child.pid,
    });
    expect(lines.some((line) => line.includes("creating 40 orders for 4 customers"))).toBe(true);

    // A second run's customers are new: their lists hold ten orders again, not twenty.
    const again = await prepareRunning(running(system.baseUrl, "--token", system.tokens.admin), 10, () => {});
    const list = await system.api("GET", requestGenerator(again.customerReads)().path);
    expect(list.body.orders).toHaveLength(10);
    expect(again.processes).toEqual([]);
  });

  test("counts a pid from --admin only for the process that started when the service did", async () => {
    // An admin server naming this test's own process (started when it says) and pid 1 (started long before its service says it did).
    const uptimeSeconds = Math.round(process.uptime());
    const status = { processes: [{ name: "this", status: { pid: process.pid, uptimeSeconds } }, { name: "reused", status: { pid: 1, uptimeSeconds: 5 } }, { name: "down" }] };
    const admin = createServer((_req, res) => res.end(JSON.stringify(status)));
    await new Promise<void>((resolve) => admin.listen(0, "127.0.0.1", resolve));
    try {
      const adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
      const underTest = await prepareRunning(running(system.baseUrl, "--token", system.tokens.admin, "--admin", adminUrl), 0, () => {});
      expect(underTest.processes.map((p) => [p.name, p.pid()])).toEqual([["this", process.pid]]);
      // No orders were asked for: none created.
      expect(underTest.storedOrders).toBe(0);
    } finally {
      await new Promise((resolve) => admin.close(resolve));
    }
  });

  test("says why when the token is not an admin's", async () => {
    await expect(prepareRunning(running(system.baseUrl, "--token", system.tokens.customers.alice!), 10, () => {})).rejects.toThrow(
      /restock answered 403 \(the token is not an admin's of this system: --token\)/,
    );
  });

  test("says so when nothing answers", async () => {
    const port = await freePort();
    await expect(prepareRunning(running(`http://127.0.0.1:${port}`, "--token", "t"), 10, () => {})).rejects.toThrow(
      new RegExp(`the gateway at http://127.0.0.1:${port} did not answer`),
    );
  });
});
