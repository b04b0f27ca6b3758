import { readFileSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { expect, test } from "vitest";
import { DEV_AUDIENCE, DEV_ISSUER, writeDevCredentials } from "../scripts/dev-security.js";
import { OrderlyError } from "../shared/errors/index.js";
import { createLogger, silentLogger } from "../shared/logging/index.js";
import { JwtVerifier } from "../shared/security/jwt.js";
import { waitFor } from "../test/helpers/processes.js";
import { reasonOf } from "../test/helpers/system.js";
import { OrderService, type CreateOrderRequest } from "../proto/gen/orderly/order/v1/order_pb.js";
import { InventoryService, RestockResponseSchema } from "../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { create } from "@bufbuild/protobuf";
import { GetOrderResponseSchema, GetStockLevelResponseSchema, QueryService } from "../proto/gen/orderly/query/v1/query_pb.js";
import { routesOf } from "./routes/index.js";
import { cachedReads } from "./cached-reads.js";
import { createGatewayHandler, requestIdSource, type GatewayDeps } from "./http-server.js";
import { GatewayMetrics } from "./metrics.js";
import { RateLimiter } from "./rate-limiter.js";
import { ReadCache } from "./read-cache.js";
import { tempDir } from "../test/helpers/temp-dir.js";

/** The handler on a real server on a free port, closed when disposed. */
async function listen(handler: ReturnType<typeof createGatewayHandler>): Promise<{ url: string } & AsyncDisposable> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An admin every token stands for. */
const ADMIN = { subject: "admin", customerId: undefined, roles: ["admin" as const] };

/**
 * A handler of the query service's routes with what a test does not set: every token the admin's, a
 * service that is not called, ready, silent, with small limits.
 */
function handlerWith(deps: Partial<GatewayDeps>): ReturnType<typeof createGatewayHandler> {
  return createGatewayHandler({
    routes: routesOf([QueryService]),
    auth: { known: () => ADMIN, verify: () => Promise.reject(new Error("every token is known here")), linkMetadata: () => ({}) },
    call: () => Promise.reject(new Error("no service is called here")),
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger: silentLogger(),
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 1000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
    ...deps,
  });
}

test("a request id's 48-bit counter carries from its low half into its high one, and wraps to 0 after 2^48 - 1", () => {
  const counters = (start: number) => {
    const next = requestIdSource(start);
    return [next(), next()].map((id) => id.slice(24));
  };
  expect(counters(2 ** 24 - 2)).toEqual(["000000ffffff", "000001000000"]);
  expect(counters(2 ** 48 - 2)).toEqual(["ffffffffffff", "000000000000"]);
  expect(counters(0x123456abcdef)).toEqual(["123456abcdf0", "123456abcdf1"]);
});

test("a request without a valid X-Request-Id gets a new UUIDv8, each gateway's with its own prefix and a counter; a valid one sent is kept", async () => {
  const deps: GatewayDeps = {
    routes: [],
    auth: { known: () => undefined, verify: () => Promise.reject(new Error("no request here authenticates")), linkMetadata: () => ({}) },
    call: () => Promise.reject(new Error("no route calls a service here")),
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger: silentLogger(),
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 1000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
  };
  await using one = await listen(createGatewayHandler(deps));
  await using other = await listen(createGatewayHandler(deps));
  const idOf = async (url: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}/healthz`, { headers });
    await response.text();
    return response.headers.get("x-request-id")!;
  };

  const ids = [await idOf(one.url), await idOf(one.url), await idOf(other.url), await idOf(other.url)];
  for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(new Set(ids).size).toBe(4);
  // Each gateway's ids share its random prefix, not the other's, and count on from one request to the next.
  expect(ids[0]!.slice(0, 24)).toBe(ids[1]!.slice(0, 24));
  expect(ids[2]!.slice(0, 24)).not.toBe(ids[0]!.slice(0, 24));
  const counter = (id: string) => parseInt(id.slice(24), 16);
  expect(counter(ids[1]!)).toBe((counter(ids[0]!) + 1) % 2 ** 48);
  // A valid id sent is kept; an invalid one is replaced.
  expect(await idOf(one.url, { "x-request-id": "client-42" })).toBe("client-42");
  expect(await idOf(one.url, { "x-request-id": "not valid!" })).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8/);
});

test("an address out of rate-limit tokens is refused before any more of its tokens are verified; a known token from it is still served", async () => {
  using temp = tempDir("orderly-gateway-");
  const dataDir = temp.path;
  const tokens = await writeDevCredentials(dataDir);
  const jwt = new JwtVerifier({ publicKeyPem: readFileSync(join(dataDir, "secrets", "jwt-public.pem"), "utf8"), issuer: DEV_ISSUER, audience: DEV_AUDIENCE });
  let verifications = 0;
  const handler = createGatewayHandler({
    routes: [],
    auth: {
      known: (authorization) => jwt.known(authorization),
      // Counts what reaches the signature check.
      verify: (authorization) => {
        verifications++;
        return jwt.verify(authorization);
      },
      linkMetadata: () => ({}),
      // 3 at once, then one a minute: the test ends before a token refills.
      rateLimiter: new RateLimiter({ perSecond: 1 / 60, burst: 3 }),
    },
    call: () => Promise.reject(new Error("no route calls a service here")),
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger: silentLogger(),
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 1000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
  });
  await using server = await listen(handler);
  const url = `${server.url}/v1/anything`;
  const get = async (token: string) => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    return { status: response.status, reason: reasonOf((await response.json()) as Parameters<typeof reasonOf>[0]) };
  };

  // The admin's token, verified once (and then known): its requests count against the admin, not the address.
  expect((await get(tokens.admin)).status).toBe(404);
  // Guessed tokens from the same address: three verified and refused, then refused unverified.
  const guesses = [];
  for (let i = 0; i < 10; i++) guesses.push(await get(`guess.${i}.x`));
  expect(guesses.map((g) => g.status)).toEqual([401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
  expect(guesses[3]!.reason).toBe("RATE_LIMITED");
  expect(verifications).toBe(1 + 3);
  // The known token is still answered from that address; a valid token new to the gateway waits like a guess.
  expect((await get(tokens.admin)).status).toBe(404);
  expect((await get(tokens.customers.alice!)).status).toBe(429);
  expect(verifications).toBe(4);
});

test("a client that goes away half-way through its body is logged as 499 CANCELLED, not as an internal error", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("gateway", "info", { write: (line: string) => void lines.push(JSON.parse(line)) });
  const handler = createGatewayHandler({
    routes: routesOf([OrderService]),
    auth: { known: () => ({ subject: "admin", customerId: undefined, roles: ["admin"] }), verify: () => Promise.reject(new Error("every token is known here")), linkMetadata: () => ({}) },
    call: () => Promise.reject(new Error("the body never arrives, so no service is called")),
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger,
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 1000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
  });
  await using server = await listen(handler);
  const { port } = new URL(server.url);
  const socket = connect(Number(port), "127.0.0.1");
  await once(socket, "connect");
  // The headers and part of the body reach the gateway; then the connection closes.
  const head = "POST /v1/orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
  await new Promise<void>((resolve, reject) => socket.write(`${head}{"customerId":`, (error) => (error ? reject(error) : resolve())));
  socket.destroy();
  const failed = await waitFor(() => lines.find((line) => line.msg === "request failed"), "the request's log line", 5000, 10);
  expect({ status: failed.status, reason: failed.reason, level: failed.level }).toEqual({ status: 499, reason: "CANCELLED", level: 30 });
});

/** Sends `requests` in one write on a new connection to `url`; the raw answers so far, more to send, and the socket (destroyed when disposed). */
async function pipeline(url: string, requests: string): Promise<{ received: () => string; send: (more: string) => void } & AsyncDisposable> {
  const { port } = new URL(url);
  const socket = connect(Number(port), "127.0.0.1");
  let received = "";
  socket.on("data", (data) => (received += data.toString("utf8")));
  await once(socket, "connect");
  socket.write(requests);
  return { received: () => received, send: (more) => void socket.write(more), [Symbol.asyncDispose]: async () => void socket.destroy() };
}

test("a request pipelined behind a write counts its budget from its arrival: the time it waited for the write's answer is spent of it", async () => {
  let now = 1_000_000;
  let releaseWrite: () => void = () => {};
  const held = new Promise<void>((resolve) => (releaseWrite = resolve));
  const deadlines: Record<string, number> = {};
  const handler = handlerWith({
    routes: routesOf([OrderService, QueryService]),
    clock: () => now,
    call: async (route, _request, options) => {
      deadlines[route.method.name] = options.deadline!;
      if (route.method.name === "CancelOrder") await held;
      throw new OrderlyError("ORDER_NOT_FOUND", "no such order");
    },
  });
  await using server = await listen(handler);
  const path = "/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z";
  await using _connection = await pipeline(
    server.url,
    `POST ${path}:cancel HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t\r\ncontent-length: 0\r\n\r\n` +
      `GET ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t\r\nx-request-timeout: 1000\r\n\r\n`,
  );
  await waitFor(() => deadlines.CancelOrder, "the write's call");
  // The write is answered 5 s (by the gateway's clock) after the read arrived.
  now += 5000;
  releaseWrite();
  await waitFor(() => deadlines.GetOrder, "the read's call");
  expect(deadlines.GetOrder).toBe(1_000_000 + 1000);
});

test("a write pipelined behind a write that outlasted its budget still has its budget to send its body: it is answered 504, not 408, and its connection goes on", async () => {
  let now = 1_000_000;
  let releaseWrite: () => void = () => {};
  const held = new Promise<void>((resolve) => (releaseWrite = resolve));
  const created: { lines: number; deadline: number }[] = [];
  let cancelling = false;
  const handler = handlerWith({
    routes: routesOf([OrderService, QueryService]),
    clock: () => now,
    limits: { defaultTimeoutMs: 10_000, maxTimeoutMs: 10_000, maxBodyBytes: 1 << 20, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
    call: async (route, request, options) => {
      if (route.method.name === "CancelOrder") {
        cancelling = true;
        await held;
      }
      if (route.method.name === "CreateOrder") {
        created.push({ lines: (request as CreateOrderRequest).order!.items.length, deadline: options.deadline! });
        throw new OrderlyError("DEADLINE_EXCEEDED", "the request's deadline passed");
      }
      throw new OrderlyError("ORDER_NOT_FOUND", "no such order");
    },
  });
  await using server = await listen(handler);
  const path = "/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z";
  const order = '{"customerId": "c", "items": [{"sku": "A", "quantity": 1}]}';
  const head = "host: x\r\nauthorization: Bearer t\r\n";
  // The order's body comes in two parts: its client is still sending it when its turn comes.
  await using connection = await pipeline(
    server.url,
    `POST ${path}:cancel HTTP/1.1\r\n${head}content-length: 0\r\n\r\n` +
      `POST /v1/orders HTTP/1.1\r\n${head}content-type: application/json\r\ncontent-length: ${order.length}\r\n\r\n${order.slice(0, 20)}`,
  );
  await waitFor(() => cancelling, "the first write's call");
  // The first write is answered 50 s (by the gateway's clock) after the order arrived, well past the order's budget.
  now += 50_000;
  releaseWrite();
  const statuses = () => [...connection.received().matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => match[1]);
  await waitFor(() => statuses().length === 1, "the first write's answer");
  connection.send(`${order.slice(20)}GET ${path} HTTP/1.1\r\n${head}\r\n`);
  await waitFor(() => statuses().length === 3, "three answers");
  expect({ statuses: statuses(), created }).toEqual({ statuses: ["404", "504", "404"], created: [{ lines: 1, deadline: 1_000_000 + 10_000 }] });
});

test("an X-Request-Timeout over the cap is capped, however many digits it has; zero is refused", async () => {
  const deadlines: number[] = [];
  const handler = handlerWith({
    call: (_route, _request, options) => {
      deadlines.push(options.deadline!);
      return Promise.reject(new OrderlyError("ORDER_NOT_FOUND", "no such order"));
    },
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 2000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
  });
  await using server = await listen(handler);
  const get = async (timeout: string) => {
    const response = await fetch(`${server.url}/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z`, { headers: { authorization: "Bearer t", "x-request-timeout": timeout } });
    return { status: response.status, reason: reasonOf((await response.json()) as Parameters<typeof reasonOf>[0]) };
  };
  for (const timeout of ["9999999999", "9".repeat(40), "000002000"]) {
    const before = Date.now();
    expect(await get(timeout)).toEqual({ status: 404, reason: "ORDER_NOT_FOUND" });
    // The cap (2000 ms) from when the gateway read the request, which is between the two clocks.
    expect(deadlines.at(-1)).toBeGreaterThanOrEqual(before + 2000);
    expect(deadlines.at(-1)).toBeLessThanOrEqual(Date.now() + 2000);
  }
  for (const timeout of ["0", "000", "1e3"]) expect(await get(timeout)).toEqual({ status: 400, reason: "INVALID_HEADER" });
  expect(deadlines).toHaveLength(3);
});

test("reads that join a cached read's fetch and run out of their own short budgets start no fetch of their own", async () => {
  const calls: number[] = [];
  let answer: (() => void) | undefined;
  const handler = createGatewayHandler({
    routes: routesOf([QueryService]),
    auth: { known: () => ({ subject: "admin", customerId: undefined, roles: ["admin"] }), verify: () => Promise.reject(new Error("every token is known here")), linkMetadata: () => ({}) },
    // A query service that answers the first fetch only when told to, and any other at its deadline, as gRPC would.
    call: (_route, request, options) => {
      calls.push(options.deadline!);
      return new Promise((resolve, reject) => {
        if (calls.length === 1) answer = () => resolve(create(GetOrderResponseSchema, { order: { id: (request as unknown as { id: string }).id } }));
        else setTimeout(() => reject(new OrderlyError("DEADLINE_EXCEEDED", "the deadline passed")), options.deadline! - Date.now());
      });
    },
    readiness: async () => ({ ready: true, services: {} }),
    openApi: () => ({}),
    logger: silentLogger(),
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 30_000, maxBodyBytes: 1024, maxJsonDepth: 8, maxInFlightPerCaller: 512 },
    cache: { store: new ReadCache(60_000), routes: cachedReads },
  });
  await using server = await listen(handler);
  const get = async (timeout: string) => {
    const response = await fetch(`${server.url}/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z`, { headers: { authorization: "Bearer t", "x-request-timeout": timeout } });
    return { status: response.status, reason: reasonOf((await response.json()) as Parameters<typeof reasonOf>[0]), cache: response.headers.get("x-cache") };
  };
  const first = get("20000");
  await waitFor(() => calls.length === 1, "the first read's fetch");
  // Many at once, so that some are timed at the very end of their budget: each gives up at its own deadline, none fetches again.
  const joined = await Promise.all(Array.from({ length: 40 }, () => get("40")));
  expect(joined).toEqual(Array(40).fill({ status: 504, reason: "DEADLINE_EXCEEDED", cache: null }));
  answer!();
  expect((await first).status).toBe(200);
  expect(calls).toHaveLength(1);
});

test("requests refused for their credentials or rate limit are counted under the route they were for; one for no route stays unmatched", async () => {
  const metrics = new GatewayMetrics({});
  const handler = handlerWith({
    auth: {
      known: (authorization) => (authorization === "Bearer admin" ? ADMIN : undefined),
      verify: () => Promise.reject(new OrderlyError("INVALID_CREDENTIALS", "not a token")),
      linkMetadata: () => ({}),
      // One token a minute for the admin, and one for the address guessing: the second request of each is refused.
      rateLimiter: new RateLimiter({ perSecond: 1 / 60, burst: 1 }),
    },
    call: () => Promise.reject(new OrderlyError("ORDER_NOT_FOUND", "no such order")),
    metrics,
  });
  await using server = await listen(handler);
  const get = async (path: string, token: string) => (await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;
  const order = "/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z";
  expect([await get(order, "admin"), await get(order, "admin"), await get(order, "guess"), await get("/v1/no/such/route", "guess")]).toEqual([404, 429, 401, 429]);
  const counted = (await metrics.registry.metrics()).split("\n").filter((line) => line.startsWith("orderly_gateway_requests_total{"));
  expect(counted.sort()).toEqual([
    'orderly_gateway_requests_total{route="GET /v1/orders/{id}",code="401"} 1',
    'orderly_gateway_requests_total{route="GET /v1/orders/{id}",code="404"} 1',
    'orderly_gateway_requests_total{route="GET /v1/orders/{id}",code="429"} 1',
    'orderly_gateway_requests_total{route="unmatched",code="429"} 1',
  ]);
});

test("the built-in paths are counted under GET (HEAD too); other methods on them are 405 and unmatched, so no method adds series to /metrics", async () => {
  const metrics = new GatewayMetrics({});
  const handler = handlerWith({ metrics });
  await using server = await listen(handler);
  const statuses: number[] = [];
  for (const method of ["GET", "HEAD", "POST", "DELETE", "PROPFIND", "PURGE", "MKCOL"]) {
    statuses.push((await fetch(`${server.url}/healthz`, { method })).status);
  }
  expect(statuses).toEqual([200, 200, 405, 405, 405, 405, 405]);
  const counted = (await metrics.registry.metrics()).split("\n").filter((line) => line.startsWith("orderly_gateway_requests_total{"));
  expect(counted.sort()).toEqual(['orderly_gateway_requests_total{route="GET /healthz",code="200"} 2', 'orderly_gateway_requests_total{route="unmatched",code="405"} 5']);
});

/**
 * A gateway whose query service answers an order at a version one higher on every fetch, so an answer says whether the
 * service gave it: `read` gets the order with `headers` and says its version, its X-Cache ("service" without one) and its Age.
 */
async function orderReadServer(store: ReadCache): Promise<{ read(headers: Record<string, string>): Promise<{ version: string; cache: string; age: string }> } & AsyncDisposable> {
  let version = 0;
  const handler = handlerWith({
    call: async (_route, request) => create(GetOrderResponseSchema, { order: { id: (request as unknown as { id: string }).id, version: BigInt(++version) } }),
    cache: { store, routes: cachedReads },
  });
  const server = await listen(handler);
  return {
    async read(headers) {
      const response = await fetch(`${server.url}/v1/orders/ord_01M914PXQEFAN79JVDS4BEYK4Z`, { headers: { authorization: "Bearer t", ...headers } });
      const { version } = (await response.json()) as { version: string };
      return { version, cache: response.headers.get("x-cache") ?? "service", age: response.headers.get("age") ?? "none" };
    },
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

test("a read that asks for a fresh answer (Cache-Control: no-cache or max-age=0, or Pragma: no-cache alone) is fetched, and its answer cached for the reads after it", async () => {
  const store = new ReadCache(60_000);
  await using server = await orderReadServer(store);
  const get = async (headers: Record<string, string> = {}) => {
    const { version, cache } = await server.read(headers);
    return `${version} ${cache}`;
  };
  const reads = [
    await get(),
    await get(),
    await get({ "cache-control": "no-cache" }),
    await get(),
    await get({ "cache-control": "max-age=0" }),
    await get({ "cache-control": "no-transform, NO-CACHE" }),
    await get({ pragma: "no-cache" }),
    // Cache-Control decides when there is one; other directives may be answered from the cache.
    await get({ "cache-control": "max-age=60", pragma: "no-cache" }),
    await get({ "cache-control": "max-age=00" }),
    await get({ "cache-control": "max-age=10, no-store" }),
    await get({ "cache-control": 'no-cache="x-cache-not-a-request-directive"' }),
    // A directive's argument may be quoted (RFC 9111 §5.2), but not half-quoted.
    await get({ "cache-control": 'max-age="0"' }),
    await get({ "cache-control": 'max-age="0' }),
  ];
  expect(reads).toEqual(["1 service", "1 hit", "2 service", "2 hit", "3 service", "4 service", "5 service", "5 hit", "6 service", "6 hit", "6 hit", "7 service", "7 hit"]);
  expect(store.stats).toMatchObject({ hits: 6, misses: 1, bypasses: 6 });
});

test("a cached answer carries its Age; a read with max-age=N takes one at most N seconds old, one with min-fresh=N one fresh for N seconds yet, and is fetched otherwise", async () => {
  let now = 0;
  const store = new ReadCache(10_000, { clock: () => now });
  await using server = await orderReadServer(store);
  const get = async (headers: Record<string, string> = {}) => {
    const { version, cache, age } = await server.read(headers);
    return `${version} ${cache} age=${age}`;
  };
  const reads: string[] = [await get(), await get()];
  now = 3_500;
  reads.push(
    await get(),
    await get({ "cache-control": "max-age=4" }),
    await get({ "cache-control": 'max-age="3"' }),
    // The answer just fetched is as old as the clock says from here on.
    await get({ "cache-control": "max-age=3" }),
  );
  now = 5_000;
  // Stored at 3.5 s with a TTL of 10 s: fresh until 13.5 s.
  reads.push(
    await get({ "cache-control": "min-fresh=8" }),
    await get({ "cache-control": "min-fresh=9" }),
    // The strictest of a directive given twice; malformed values and other directives are answered as without them.
    await get({ "cache-control": "max-age=5, max-age=1" }),
    await get({ "cache-control": "max-age=abc, min-fresh=-1, no-store, max-stale=0" }),
  );
  expect(reads).toEqual([
    "1 service age=none",
    "1 hit age=0",
    "1 hit age=3",
    "1 hit age=3",
    "2 service age=none",
    "2 hit age=0",
    "2 hit age=1",
    "3 service age=none",
    "3 hit age=0",
    "3 hit age=0",
  ]);
  expect(store.stats).toMatchObject({ hits: 7, misses: 3, bypasses: 0 });
});

test("a read that joins another reader's fetch which read the resource older than a write through this gateway (the read model lagging) is not answered that: it fetches again", async () => {
  // The read model: at version 9 until it applies the restock's event (version 10). A read's answer reaches the gateway when the test says.
  let readModelVersion = 9;
  const reads: Array<() => void> = [];
  const store = new ReadCache(5000);
  const handler = handlerWith({
    routes: routesOf([QueryService, InventoryService]),
    call: (route) => {
      if (route.fullName.endsWith("/Restock")) return Promise.resolve(create(RestockResponseSchema, { item: { sku: "MUG-1", name: "Mug", available: 15, version: 10n } }));
      const version = readModelVersion;
      const stockLevel = { sku: "MUG-1", name: "Mug", available: version === 10 ? 15 : 5, version: BigInt(version) };
      return new Promise((resolve) => reads.push(() => resolve(create(GetStockLevelResponseSchema, { stockLevel }))));
    },
    cache: { store, routes: cachedReads },
  });
  await using server = await listen(handler);
  const headers = { authorization: "Bearer t", "content-type": "application/json" };
  const read = async (response: Promise<Response>) => {
    const answer = await response;
    return { version: ((await answer.json()) as { version: string }).version, cache: answer.headers.get("x-cache") };
  };
  // The admin restocks through this gateway and is told version 10; another reader's read then reaches the query service
  // before the read model has the restock.
  const restock = await fetch(`${server.url}/v1/inventory/MUG-1:restock`, { method: "POST", headers, body: JSON.stringify({ quantity: 10 }) });
  expect(((await restock.json()) as { version: string }).version).toBe("10");
  const other = read(fetch(`${server.url}/v1/stock/MUG-1`, { headers }));
  await waitFor(() => reads.length === 1, "the other reader's fetch");
  // The read model applies the restock; the admin's read joins the fetch in flight, which then answers version 9.
  readModelVersion = 10;
  const mine = read(fetch(`${server.url}/v1/stock/MUG-1`, { headers }));
  await waitFor(() => store.stats.shared === 1, "the admin's read joining the fetch in flight");
  reads.shift()!();
  expect(await other).toEqual({ version: "9", cache: null });
  await waitFor(() => reads.length === 1, "the admin's read fetching for itself");
  reads.shift()!();
  expect(await mine).toEqual({ version: "10", cache: null });
});

test("readers that joined a fetch answered older than an announced version fetch again together: one call for all of them, not one each", async () => {
  const store = new ReadCache(5000);
  const answers: Array<() => void> = [];
  const handler = handlerWith({
    // The read model has not applied the SKU's event (version 10) the gateway heard: it answers version 9.
    call: () => new Promise((resolve) => answers.push(() => resolve(create(GetStockLevelResponseSchema, { stockLevel: { sku: "MUG-1", name: "Mug", available: 5, version: 9n } })))),
    cache: { store, routes: cachedReads },
  });
  await using server = await listen(handler);
  store.invalidate("MUG-1", 10);
  const read = async () => {
    const response = await fetch(`${server.url}/v1/stock/MUG-1`, { headers: { authorization: "Bearer t" } });
    return `${((await response.json()) as { version: string }).version} ${response.headers.get("x-cache") ?? "service"}`;
  };
  const reads = Array.from({ length: 20 }, () => read());
  await waitFor(() => store.stats.shared === 19, "nineteen readers joining the first one's fetch");
  answers.shift()!();
  await waitFor(() => answers.length === 1, "the joiners' fetch again");
  answers.shift()!();
  expect(await Promise.all(reads)).toEqual(Array(20).fill("9 service"));
  expect(answers).toEqual([]);
});

test("a request's query is logged with only the parameters the routes take, and their plain values: a token put in the URL by mistake is left out", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("gateway", "info", { write: (line: string) => void lines.push(JSON.parse(line)) });
  await using server = await listen(handlerWith({ logger }));
  const logged = async (query: string) => {
    lines.length = 0;
    const response = await fetch(`${server.url}/v1/customers/alice/orders?${query}`, { headers: { authorization: "Bearer t" } });
    expect(response.status).toBe(400);
    return (await waitFor(() => lines.find((line) => line.msg === "request failed"), "the request's log line")) as Record<string, string>;
  };
  // The query as logged; whether the line says the secret anywhere (a known parameter's malformed value is quoted by the
  // error's message, as its client is told).
  const cases: [string, string, boolean][] = [
    ["pageSize=2&access_token=SECRET-1", "pageSize=2&…", false],
    ["access_token%3DSECRET-2&pageSize=2", "…&pageSize=2", false],
    ["SECRET-3", "…", false],
    ["pageSize=2;access_token=SECRET-4", "pageSize=…", true],
    ["pageToken=abc_-12&page_size=x%20SECRET-6", "pageToken=abc_-12&page_size=…", true],
    // A bearer token pasted as a value is plain, and longer than any value shown.
    [`pageToken=eyJhbGciOiJFUzI1NiJ9.${"SECRET".repeat(12)}.c2lnbmF0dXJl&pageSize=x`, "pageToken=…&pageSize=x", false],
  ];
  for (const [query, shown, quoted] of cases) {
    const line = await logged(query);
    expect({ url: line.url, says: JSON.stringify(line).includes("SECRET") }).toEqual({ url: `/v1/customers/alice/orders?${shown}`, says: quoted });
  }
});

test("a request's path is logged with its plain segments only (ids, SKUs, actions): a token put in the path by mistake is left out, from the line and from the refusal's message", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("gateway", "info", { write: (line: string) => void lines.push(JSON.parse(line)) });
  await using server = await listen(handlerWith({ logger }));
  const token = `eyJhbGciOiJFZERTQSJ9.${"SECRET".repeat(20)}.c2lnbmF0dXJl`;
  // The method and path sent, the path as logged, and the status.
  const cases: [string, string, string, number][] = [
    ["GET", "/v1/inventory;access_token=SECRET-1", "/v1/…", 404],
    ["GET", `/v1/x/${token}`, "/v1/x/…", 404],
    ["GET", "/v1/nowhere/ord_1:SECRET%20x", "/v1/nowhere/…", 404],
    ["PUT", `/v1/orders/${token}`, "/v1/orders/…", 405],
  ];
  for (const [method, path, shown, status] of cases) {
    lines.length = 0;
    const response = await fetch(`${server.url}${path}`, { method, headers: { authorization: "Bearer t" } });
    const body = (await response.json()) as { message: string };
    const line = (await waitFor(() => lines.find((l) => l.msg === "request failed"), "the request's log line")) as Record<string, string>;
    expect({ status: response.status, url: line.url, says: JSON.stringify(line).includes("SECRET"), tells: body.message.includes("SECRET") }).toEqual({ status, url: shown, says: false, tells: false });
  }
});
