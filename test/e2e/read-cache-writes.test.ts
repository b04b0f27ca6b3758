// A client is never served, from a gateway's cache, anything older than what it wrote through that gateway, even when the
// gateway misses the write's events.
import { connect as connectTcp } from "node:net";
import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape } from "../helpers/prometheus.js";
import { reasonOf, startSystem, type System } from "../helpers/system.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";

const cacheLive = async (system: System) => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_cache_live");
const inFlight = async (system: System) => sampleValue(await scrape(`${system.adminUrl}/metrics`), "orderly_gateway_in_flight_requests");

/**
 * A system (60 s cache TTL) whose gateway and query service reach NATS through proxies of their own, so that the
 * events can be held from either alone.
 */
async function startWithNatsProxies() {
  const system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  const proxies: TcpProxy[] = [];
  const dispose = async () => {
    for (const proxy of proxies) await proxy.close();
    await system[Symbol.asyncDispose]();
  };
  try {
    const target = { host: "127.0.0.1", port: system.nats.port };
    const [toGateway, toQuery] = [await startTcpProxy(target), await startTcpProxy(target)];
    proxies.push(toGateway, toQuery);
    await system.restart("query", { NATS_URL: `nats://${toQuery.address}` });
    await system.restart("gateway", { NATS_URL: `nats://${toGateway.address}` });
    await waitFor(async () => (await cacheLive(system)) === 1, "the gateway's cache live");
    return {
      system,
      toGateway,
      toQuery,
      /** Drops the gateway's NATS connection, with the events held on it, and waits until it is back and subscribed again (its cache starts empty). */
      async reconnectGateway() {
        toGateway.reset();
        await waitFor(async () => (await cacheLive(system)) === 0, "the gateway to notice its connection dropped");
        toGateway.pass();
        await waitFor(async () => (await cacheLive(system)) === 1, "the gateway subscribed again");
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** The stock level of a SKU as the read model has it, through the uncached list route. */
async function listedLevel(system: System, sku: string): Promise<{ available: number; version: string } | undefined> {
  const r = await system.api("GET", "/v1/stock?pageSize=100");
  const level = (r.body?.stockLevels ?? []).find((l: { sku: string }) => l.sku === sku);
  return level && { available: level.available ?? 0, version: level.version };
}

test("a fill begun before a cancel and answered after it is neither shared with a later read nor stored; another customer's HEAD never gets the entry", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  await system.api("POST", "/v1/inventory/RV-A:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { as: "alice", body: { customerId: "alice", items: [{ sku: "RV-A", quantity: 1 }] } });
  expect(created.status).toBe(200);
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}/timeline`)).body?.changes?.length === 2, "the order in the read model");

  system.query.child.kill("SIGSTOP");
  let first;
  let second;
  try {
    first = system.api("GET", `/v1/orders/${created.body.id}`, { as: "alice", headers: { "x-request-timeout": "20000" } });
    await waitFor(async () => (await inFlight(system)) === 1, "the first read in flight");
    const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`, { as: "alice" });
    expect(cancelled.body.status).toBe("ORDER_STATUS_CANCELLED");
    second = system.api("GET", `/v1/orders/${created.body.id}`, { as: "alice", headers: { "x-request-timeout": "20000" } });
    await waitFor(async () => (await inFlight(system)) === 2, "the second read in flight");
  } finally {
    system.query.child.kill("SIGCONT");
  }
  await first;
  const secondAnswer = await second;
  // It began after the cancel was answered: it must not have waited for the fetch begun before.
  expect(secondAnswer.headers.get("x-cache")).toBeNull();
  await waitFor(async () => (await system.api("GET", `/v1/orders/${created.body.id}/timeline`)).body?.changes?.length === 3, "the cancel in the read model");
  const after = await system.api("GET", `/v1/orders/${created.body.id}`, { as: "alice" });
  expect(after.body.status).toBe("ORDER_STATUS_CANCELLED");
  // HEAD, and another customer, never get alice's entry.
  const head = await system.api("HEAD", `/v1/orders/${created.body.id}`, { as: "bob" });
  expect([head.status, head.headers.get("x-cache")]).toEqual([404, null]);
});

/**
 * The gateway misses events while its NATS connection is being replaced (they are published before it is subscribed
 * again), and the read model applies them only after the gateway is back: no event drops what the cache stores of
 * them meanwhile. A restock through the gateway announces the version it answered, and an order the versions the
 * order service says its reservation left its SKUs at (x-orderly-stock-versions), so an older answer of the read model
 * is not stored.
 */
test("after an order, and its cancel, through this gateway whose events the gateway missed, the cache does not keep the stock level from before it that the lagging read model answers", async () => {
  await using proxied = await startWithNatsProxies();
  const { system, toGateway, toQuery } = proxied;
  for (const sku of ["RV-R", "RV-O"]) {
    const restocked = await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 10 } });
    expect(restocked.status).toBe(200);
    await waitFor(async () => (await listedLevel(system, sku))?.available === 10, `${sku} in the read model`);
  }

  // The events of the writes below reach neither the gateway nor the read model for now.
  toQuery.blackhole();
  toGateway.blackhole();
  const restock = await system.api("POST", "/v1/inventory/RV-R:restock", { body: { quantity: 5 } });
  expect([restock.status, restock.body.available]).toEqual([200, 15]);
  const order = await system.api("POST", "/v1/orders", { as: "alice", body: { customerId: "alice", items: [{ sku: "RV-O", quantity: 1 }] } });
  expect([order.status, order.body.status]).toEqual([200, "ORDER_STATUS_CONFIRMED"]);
  // The gateway's connection goes (its held events with it) and comes back: it resumes, starting empty.
  await proxied.reconnectGateway();

  // Read model still behind: both reads answer the old levels (the read model's own lag), and neither is kept.
  expect((await system.api("GET", "/v1/stock/RV-R", { as: "alice" })).body.available).toBe(10);
  expect((await system.api("GET", "/v1/stock/RV-O", { as: "alice" })).body.available).toBe(10);

  // The read model catches up.
  toQuery.pass();
  await waitFor(async () => (await listedLevel(system, "RV-R"))?.available === 15, "the restock in the read model", 30_000);
  await waitFor(async () => (await listedLevel(system, "RV-O"))?.available === 9, "the reservation in the read model", 30_000);

  // The restock's announced version kept its stale fill out of the cache.
  const restockedRead = await system.api("GET", "/v1/stock/RV-R", { as: "alice" });
  expect(restockedRead.body.available).toBe(15);
  // The order's SKU: the level after alice's own order, from the read model, not the one from before it from the cache.
  const orderedRead = await system.api("GET", "/v1/stock/RV-O", { as: "alice" });
  expect({ available: orderedRead.body.available, xCache: orderedRead.headers.get("x-cache") }).toEqual({ available: 9, xCache: null });

  // The same for a cancel, whose release returns the unit: the pre-cancel level is not kept either.
  toQuery.blackhole();
  toGateway.blackhole();
  const cancelled = await system.api("POST", `/v1/orders/${order.body.id}:cancel`, { as: "alice" });
  expect([cancelled.status, cancelled.body.status]).toEqual([200, "ORDER_STATUS_CANCELLED"]);
  await proxied.reconnectGateway();
  expect((await system.api("GET", "/v1/stock/RV-O", { as: "alice" })).body.available).toBe(9);
  toQuery.pass();
  await waitFor(async () => (await listedLevel(system, "RV-O"))?.available === 10, "the release in the read model", 30_000);
  const releasedRead = await system.api("GET", "/v1/stock/RV-O", { as: "alice" });
  expect({ available: releasedRead.body.available, xCache: releasedRead.headers.get("x-cache") }).toEqual({ available: 10, xCache: null });
});

/**
 * The same missed-event window, for the order itself: POST /v1/orders announces the version it answered for the order
 * it made (it has no path variable naming it), or, for an order it refused as REJECTED, the version the refusal names
 * (orderVersion), so an older answer of the lagging read model is not stored.
 */
for (const { decided, stocked, answered } of [
  { decided: "CONFIRMED", stocked: 10, answered: 200 },
  { decided: "REJECTED", stocked: 1, answered: 400 },
] as const) {
  test(`an order the gateway answered ${decided} (v2), whose events it missed, is not served PENDING (v1) from the cache once the read model has v2`, async () => {
    await using proxied = await startWithNatsProxies();
    const { system, toGateway, toQuery } = proxied;
    await system.api("POST", "/v1/inventory/RV-P:restock", { body: { quantity: stocked } });

    // Inventory down: the order is accepted PENDING (v1), and the read model gets it.
    await system.inventory.stop("SIGKILL");
    const request = { as: "alice", body: { customerId: "alice", items: [{ sku: "RV-P", quantity: 2 }] }, headers: { "idempotency-key": "rv-p-1", "x-request-timeout": "2000" } };
    const accepted = await system.api("POST", "/v1/orders", request);
    expect([accepted.status, accepted.body.status, accepted.body.version]).toEqual([202, "ORDER_STATUS_PENDING", "1"]);
    const id = accepted.body.id as string;
    await waitFor(async () => (await system.api("GET", `/v1/orders/${id}/timeline`, { as: "alice" })).body?.changes?.length === 1, "v1 in the read model");

    // Its decision (v2) reaches neither the gateway nor the read model for now; the customer's retry through the gateway gets it.
    toQuery.blackhole();
    toGateway.blackhole();
    await system.restart("inventory");
    const retried = await waitFor(async () => {
      const r = await system.api("POST", "/v1/orders", { ...request, headers: { "idempotency-key": "rv-p-1" } });
      return r.status === answered ? r : undefined;
    }, "the order decided", 30_000, 200);
    if (decided === "CONFIRMED") expect([retried.body.status, retried.body.version]).toEqual(["ORDER_STATUS_CONFIRMED", "2"]);
    else expect([reasonOf(retried.body), retried.body.details[0].metadata]).toMatchObject(["INSUFFICIENT_STOCK", { orderId: id, orderVersion: "2" }]);

    await proxied.reconnectGateway();

    // Read model still at v1 and the stock from before (its own lag): answered, not kept.
    expect((await system.api("GET", `/v1/orders/${id}`, { as: "alice" })).body.version).toBe("1");
    expect((await system.api("GET", "/v1/stock/RV-P", { as: "alice" })).body.available).toBe(stocked);
    toQuery.pass();
    await waitFor(async () => (await system.api("GET", `/v1/orders/${id}/timeline`, { as: "alice" })).body?.changes?.length === 2, "v2 in the read model", 30_000);
    const level = decided === "CONFIRMED" ? stocked - 2 : stocked;
    await waitFor(async () => (await listedLevel(system, "RV-P"))?.available === level, "the stock in the read model", 30_000);

    const read = await system.api("GET", `/v1/orders/${id}`, { as: "alice" });
    expect({ status: read.body.status, version: read.body.version, xCache: read.headers.get("x-cache") }).toEqual({ status: `ORDER_STATUS_${decided}`, version: "2", xCache: null });
    // Reserved through events, not by the retry: the order service still says the versions its reservation left.
    const stock = await system.api("GET", "/v1/stock/RV-P", { as: "alice" });
    expect({ available: stock.body.available, xCache: stock.headers.get("x-cache") }).toEqual({ available: level, xCache: decided === "CONFIRMED" ? null : "hit" });
  });
}

test("a read pipelined behind a write on one connection waits for the write's answer: it is never served older than the write (from the cache, or the read model)", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  await system.api("POST", "/v1/inventory/RV-P:restock", { body: { quantity: 10 } });
  const { hostname, port } = new URL(system.baseUrl);
  const alice = `authorization: Bearer ${system.tokens.customers.alice}\r\n`;
  /** Sends `requests` in one write on a new connection and returns the JSON bodies of the first `count` answers. */
  const pipelined = async (requests: string, count: number) => {
    const socket = connectTcp(Number(port), hostname);
    socket.on("error", () => {});
    let received = "";
    socket.on("data", (data) => (received += data.toString("utf8")));
    try {
      socket.write(requests);
      const answers = () => received.split(/(?=HTTP\/1\.1 \d{3} )/).filter((part) => /\r\n\r\n\{/.test(part) && part.endsWith("}"));
      await waitFor(() => answers().length >= count, `${count} answers`);
      return answers().map((answer) => ({ cache: /^x-cache: (\w+)/im.exec(answer)?.[1], body: JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) }));
    } finally {
      socket.destroy();
    }
  };
  for (let round = 0; round < 5; round++) {
    const created = await system.api("POST", "/v1/orders", { as: "alice", body: { customerId: "alice", items: [{ sku: "RV-P", quantity: 1 }] } });
    const path = `/v1/orders/${created.body.id}`;
    // Its read cached (a hit), as a client reading its order over and over would have it.
    await waitFor(async () => (await system.api("GET", path, { as: "alice" })).headers.get("x-cache") === "hit", "the order's read cached");
    const [cancelled, read] = await pipelined(`POST ${path}:cancel HTTP/1.1\r\nhost: gateway\r\n${alice}content-length: 0\r\n\r\nGET ${path} HTTP/1.1\r\nhost: gateway\r\n${alice}\r\n`, 2);
    expect(cancelled!.body.status).toBe("ORDER_STATUS_CANCELLED");
    expect({ status: read!.body.status, version: BigInt(read!.body.version) >= BigInt(cancelled!.body.version) }).toEqual({ status: "ORDER_STATUS_CANCELLED", version: true });
  }
});
