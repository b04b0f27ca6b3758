import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startSystem, type System } from "../../test/helpers/system.js";
import { parseOptions, type BenchOptions } from "./options.js";
import { requestGenerator } from "./requests.js";
import { prepareRunning } from "./running.js";

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
    const view = await prepareRunning({ gatewayUrl: system.baseUrl, token: system.tokens.admin, adminUrl: system.adminUrl }, 40, (line) => lines.push(line));
    expect(view.endpoint).toEqual({ host: "127.0.0.1", port: system.gateway.port });
    expect(view.storedOrders).toBe(40);

    // Every read the bench will make names an order that is there: one cycle visits each of the 40 once.
    const next = requestGenerator(view.orderReads());
    const paths = Array.from({ length: 40 }, () => next().path);
    expect(new Set(paths).size).toBe(40);
    for (const path of paths) expect((await system.api("GET", path)).status).toBe(200);
    const hot = requestGenerator(view.orderReads(8));
    expect(new Set(Array.from({ length: 400 }, () => hot().path)).size).toBeLessThanOrEqual(8);

    // Ten orders per customer, as seeded stacks have; the SKUs restocked with a million units each, less what the orders took.
    const customers = requestGenerator(view.customerReads);
    const list = await system.api("GET", customers().path);
    expect(list.status).toBe(200);
    expect(list.body.orders).toHaveLength(10);
    const item = await system.api("GET", "/v1/inventory/BENCH-SKU-0");
    expect(item.status).toBe(200);
    // Orders 0 and 32 of the 40 took one unit each of BENCH-SKU-0 (the SKUs are taken in turn).
    expect({ available: item.body.available, reserved: item.body.reserved }).toEqual({ available: 1_000_000 - 2, reserved: 2 });

    // The services' pids, from the gateway's /status.json: the bench counts their CPU.
    const pids = Object.fromEntries(view.processes.map((p) => [p.name, p.pid()]));
    expect(pids).toEqual({
      gateway: system.gateway.child.pid,
      order: system.order.child.pid,
      inventory: system.inventory.child.pid,
      query: system.query.child.pid,
    });
    expect(lines.some((line) => line.includes("creating 40 orders for 4 customers"))).toBe(true);
  });

  test("says why when the token is not an admin's", async () => {
    await expect(prepareRunning({ gatewayUrl: system.baseUrl, token: system.tokens.customers.alice! }, 10, () => {})).rejects.toThrow(
      /restock answered 403 \(the token is not an admin's of this system: --token\)/,
    );
  });

  test("says so when nothing answers", async () => {
    await expect(prepareRunning({ gatewayUrl: "http://127.0.0.1:1", token: "t" }, 10, () => {})).rejects.toThrow(/the gateway at http:\/\/127.0.0.1:1 did not answer/);
  });
});

describe("the bench's options for a running Orderly", () => {
  const parse = (...args: string[]) => parseOptions(args) as BenchOptions;

  test("--gateway measures reads and writes of the system there", () => {
    const options = parse("--gateway", "http://127.0.0.1:8080/", "--admin", "http://127.0.0.1:9050", "--token", "t");
    expect(options.running).toEqual({ gatewayUrl: "http://127.0.0.1:8080", token: "t", adminUrl: "http://127.0.0.1:9050" });
    expect(options.phases).toEqual(["reads", "writes"]);
    expect(parse().running).toBeUndefined();
    expect(parse().phases).toEqual(["reads", "writes", "relay"]);
  });

  test("refuses what needs stacks the bench starts, and options without --gateway", () => {
    expect(() => parse("--gateway", "http://h:1", "--only", "relay")).toThrow(/drop the relay phase/);
    expect(() => parse("--gateway", "http://h:1", "--growth")).toThrow(/drop the growth check/);
    expect(() => parse("--gateway", "http://h:1", "--env", "A=1")).toThrow(/drop --profile and --env/);
    expect(() => parse("--gateway", "https://h:1")).toThrow(/--gateway must be an http:\/\/ URL/);
    expect(() => parse("--token", "t")).toThrow(/--token and --admin go with --gateway/);
  });
});
