import { request as httpRequest } from "node:http";
import { connect as connectTcp } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { Code, OrderlyError } from "../../shared/errors/index.js";
import { connect, createClient } from "../../shared/grpc/index.js";
import { waitFor } from "../helpers/processes.js";
import { rawExchange } from "../helpers/raw-http.js";
import { api, reasonOf, startSystem, type System } from "../helpers/system.js";

describe("limits", () => {
  let system: System;

  beforeAll(async () => {
    system = await startSystem({ GATEWAY_HEADERS_TIMEOUT_MS: "1000", QUERY_MAX_WAITS_PER_CALLER: "12" });
  }, 60_000);

  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  test("a body over MAX_BODY_BYTES (1 MiB) gets 413 PAYLOAD_TOO_LARGE", async () => {
    const body = JSON.stringify({ customerId: "alice", items: [{ sku: "X", quantity: 1 }], padding: "x".repeat(1024 * 1024) });
    const response = await system.api("POST", "/v1/orders", { rawBody: body, headers: { "content-type": "application/json" } });
    expect({ status: response.status, reason: reasonOf(response.body) }).toEqual({ status: 413, reason: "PAYLOAD_TOO_LARGE" });
  });

  /**
   * Sends a POST /v1/orders head, then `bodyBytes` of body as fast as the socket takes them (never waiting for the
   * gateway), and returns the gateway's answer: a client that goes on sending after the gateway has answered.
   */
  async function blastBody(
    framing: "chunked" | "content-length" | "expect-continue",
    bodyBytes: number,
    options: { authorization?: string; connectionClose?: boolean; extraHeaders?: string } = {},
  ): Promise<{ statusLine: string; reason: string | undefined; continued: boolean }> {
    const { hostname, port } = new URL(system.baseUrl);
    const socket = connectTcp(Number(port), hostname);
    socket.on("error", () => {}); // the gateway closes the connection after answering; writes still under way may fail
    let received = "";
    const complete = () => /\r\n\r\n(\{.*\})$/s.test(received);
    // The answer once it is whole, or what arrived before the connection closed (nothing, when it was reset).
    const answered = new Promise<string>((resolve) => {
      socket.on("data", (data) => {
        received += data.toString("utf8");
        if (complete()) resolve(received);
      });
      socket.on("close", () => resolve(received));
    });
    const framingHeaders = {
      chunked: "transfer-encoding: chunked\r\n",
      "content-length": `content-length: ${bodyBytes}\r\n`,
      "expect-continue": `content-length: ${bodyBytes}\r\nexpect: 100-continue\r\n`,
    }[framing];
    const authorization = options.authorization === undefined ? `authorization: Bearer ${system.tokens.admin}\r\n` : options.authorization;
    const connection = options.connectionClose ? "connection: close\r\n" : "";
    socket.write(`POST /v1/orders HTTP/1.1\r\nhost: ${hostname}\r\n${authorization}${connection}${options.extraHeaders ?? ""}content-type: application/json\r\n${framingHeaders}\r\n`);
    // With Expect: 100-continue a client waits for the go-ahead (or an answer) before it sends its body.
    if (framing === "expect-continue") await waitFor(() => received.length > 0, "the gateway's first answer");
    const chunk = Buffer.alloc(64 * 1024, "x");
    for (let sent = 0; sent < bodyBytes && !socket.destroyed; sent += chunk.length) {
      socket.write(framing === "chunked" ? `${chunk.length.toString(16)}\r\n${chunk.toString("latin1")}\r\n` : chunk);
    }
    try {
      const response = await answered;
      const body = /\r\n\r\n(\{.*\})$/s.exec(response)?.[1];
      return { statusLine: response.split("\r\n")[0]!, reason: body === undefined ? undefined : reasonOf(JSON.parse(body)), continued: response.includes("100 Continue") };
    } finally {
      socket.destroy();
    }
  }

  // Data arriving after a close is answered with a TCP reset, which can discard the answer in the client's buffers before
  // it reads it: the gateway shuts its side and goes on reading and dropping the body for a while (a lingering close).
  test.each(["chunked", "content-length"] as const)(
    "a client that goes on sending a body (%s) far past MAX_BODY_BYTES still gets 413 PAYLOAD_TOO_LARGE, not a reset connection",
    async (framing) => {
      for (let i = 0; i < 10; i++) {
        expect(await blastBody(framing, 8 * 1024 * 1024)).toEqual({ statusLine: "HTTP/1.1 413 Payload Too Large", reason: "PAYLOAD_TOO_LARGE", continued: false });
      }
    },
  );

  test("a client that sends Expect: 100-continue with a body over MAX_BODY_BYTES gets 413 at once, not the go-ahead", async () => {
    expect(await blastBody("expect-continue", 8 * 1024 * 1024)).toEqual({ statusLine: "HTTP/1.1 413 Payload Too Large", reason: "PAYLOAD_TOO_LARGE", continued: false });
  });

  test("a client without a token that sends a body with Connection: close gets its 401 before the body is read, not a reset connection", async () => {
    for (let i = 0; i < 10; i++) {
      expect(await blastBody("content-length", 4 * 1024 * 1024, { authorization: "", connectionClose: true })).toEqual({
        statusLine: "HTTP/1.1 401 Unauthorized",
        reason: "AUTHENTICATION_REQUIRED",
        continued: false,
      });
    }
  });

  test("a client that goes on sending a body after headers over GATEWAY_MAX_HEADER_BYTES gets 431 HEADERS_TOO_LARGE, not a reset connection", async () => {
    for (let i = 0; i < 10; i++) {
      expect(await blastBody("content-length", 4 * 1024 * 1024, { extraHeaders: `x-padding: ${"a".repeat(20 * 1024)}\r\n` })).toEqual({
        statusLine: "HTTP/1.1 431 Request Header Fields Too Large",
        reason: "HEADERS_TOO_LARGE",
        continued: false,
      });
    }
  });

  test("a request pipelined behind a body refused with 413 is not run: only the 413 comes back, and no order is created", async () => {
    const restocked = await system.api("POST", "/v1/inventory/PIPE-1:restock", { body: { quantity: 100, name: "Pipe", unitPriceMinor: "100", currencyCode: "USD" } });
    expect(restocked.status).toBe(200);
    const { hostname, port } = new URL(system.baseUrl);
    const head = (length: number) =>
      `POST /v1/orders HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
    const oversized = 2 * 1024 * 1024;
    const order = JSON.stringify({ customerId: "pipelined", items: [{ sku: "PIPE-1", quantity: 1 }] });
    // A client that does not close its side when the gateway closes its own (as Node's sockets do unless told to).
    const socket = connectTcp({ port: Number(port), host: hostname, allowHalfOpen: true });
    socket.on("error", () => {});
    let received = "";
    socket.on("data", (data) => (received += data.toString("utf8")));
    const answered = new Promise((resolve) => socket.once("end", resolve));
    socket.write(head(oversized));
    socket.write(Buffer.alloc(oversized, "x"));
    socket.write(head(Buffer.byteLength(order)) + order);
    await answered;
    // The gateway has shut its side; once it has read what was sent (and lingered) it closes, and then a byte sent draws a
    // reset. (Empty lines between requests are allowed, so the probes change nothing while it still reads.)
    await waitFor(() => {
      if (!socket.destroyed) socket.write("\r\n");
      return socket.destroyed;
    }, "the gateway to close the connection");
    expect(received.match(/^HTTP\/1\.1 \d+/gm)).toEqual(["HTTP/1.1 413"]);
    // An order of the same customer made afterwards is listed alone: the pipelined one's events would have come first.
    const after = await system.api("POST", "/v1/orders", { body: { customerId: "pipelined", items: [{ sku: "PIPE-1", quantity: 2 }] } });
    expect(after.status).toBe(200);
    const listed = await waitFor(async () => {
      const list = await system.api("GET", "/v1/customers/pipelined/orders");
      return list.body.orders?.some((o: { id: string }) => o.id === after.body.id) ? list.body.orders : undefined;
    }, "the later order listed");
    expect(listed.map((o: { id: string }) => o.id)).toEqual([after.body.id]);
  });

  /** Opens a raw connection to the gateway: what it received so far, and a promise of the moment the gateway shut its side (or the connection closed). */
  function rawConnection(): { socket: ReturnType<typeof connectTcp>; received: () => string; ended: Promise<void> } {
    const { hostname, port } = new URL(system.baseUrl);
    const socket = connectTcp({ port: Number(port), host: hostname, allowHalfOpen: true });
    socket.on("error", () => {});
    let received = "";
    socket.on("data", (data) => (received += data.toString("utf8")));
    const ended = new Promise<void>((resolve) => {
      socket.once("end", resolve);
      socket.once("close", resolve);
    });
    return { socket, received: () => received, ended };
  }

  test("a malformed request pipelined behind an order is refused after the order's answer: the order is answered 200, not cut off", async () => {
    const restocked = await system.api("POST", "/v1/inventory/PIPE-2:restock", { body: { quantity: 100, name: "Pipe", unitPriceMinor: "100", currencyCode: "USD" } });
    expect(restocked.status).toBe(200);
    const order = JSON.stringify({ customerId: "pipelined-2", items: [{ sku: "PIPE-2", quantity: 1 }] });
    const { socket, received, ended } = rawConnection();
    try {
      // One write: the order, and right behind it bytes that are not HTTP, which the parser fails on while the order is still being made.
      socket.write(
        `POST /v1/orders HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(order)}\r\n\r\n${order}` +
          "BROKEN\r\n\r\n",
      );
      await ended;
      // The answers follow each other without a line between them (a body ends where its Content-Length says).
      expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 400"]);
      const [answer, refusal] = received().split(/(?=HTTP\/1\.1 )/);
      expect(reasonOf(JSON.parse(refusal!.slice(refusal!.indexOf("\r\n\r\n") + 4)))).toBe("MALFORMED_REQUEST");
      const id = /"id":"([^"]+)"/.exec(answer!)?.[1];
      const stored = await system.api("GET", `/v1/orders/${id}`);
      expect({ status: stored.status, order: stored.body.status }).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });
    } finally {
      socket.destroy();
    }
  });

  test("a body that never ends, sent with a request answered before it is read (401), gets that one answer and the connection shut within seconds, not held to the server's request timeout", async () => {
    const { socket, received, ended } = rawConnection();
    socket.write("POST /v1/orders HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n");
    // A byte of body every 100 ms, for as long as the gateway keeps the connection.
    const trickle = setInterval(() => socket.writable && socket.write("1\r\n \r\n"), 100);
    try {
      // The server's request timeout in this system is 40 s; the connection is shut long before.
      let shut = false;
      void ended.then(() => (shut = true));
      await waitFor(() => shut, "the gateway to shut the connection", 10_000);
      expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(["HTTP/1.1 401"]);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
  });

  /** Sends `requests` in one write on one connection and returns the status of each answer, once `count` have come. */
  async function pipelined(requests: string, count: number): Promise<string[]> {
    const { socket, received } = rawConnection();
    try {
      socket.write(requests);
      await waitFor(() => (received().match(/HTTP\/1\.1 \d+/g) ?? []).length >= count, `${count} answers`);
      return received().match(/HTTP\/1\.1 \d+/g)!;
    } finally {
      socket.destroy();
    }
  }

  test("a request refused before its body is read (404, as it arrives) leaves its connection open: the next request on it is answered", async () => {
    const body = JSON.stringify({ quantity: 1 });
    const alice = `authorization: Bearer ${system.tokens.customers.alice}\r\n`;
    const nowhere = `POST /v1/nowhere HTTP/1.1\r\nhost: gateway\r\n${alice}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const read = `GET /v1/inventory?pageSize=1 HTTP/1.1\r\nhost: gateway\r\n${alice}\r\n`;
    // Her token known to the gateway, so the 404 is given as the request's head arrives, before its body is parsed.
    expect((await system.api("GET", "/v1/inventory?pageSize=1", { as: "alice" })).status).toBe(200);
    expect(await pipelined(nowhere + read, 2)).toEqual(["HTTP/1.1 404", "HTTP/1.1 200"]);
  });

  test("a body that fails to parse after its request was refused (403) draws no second answer: the connection closes", async () => {
    const { socket, received, ended } = rawConnection();
    try {
      const alice = `authorization: Bearer ${system.tokens.customers.alice}\r\n`;
      socket.write(`POST /v1/inventory/PIPE-3:restock HTTP/1.1\r\nhost: gateway\r\n${alice}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`);
      await waitFor(() => /HTTP\/1\.1 403/.test(received()), "the 403");
      socket.write("ZZ\r\n");
      await ended;
      expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(["HTTP/1.1 403"]);
    } finally {
      socket.destroy();
    }
  });

  test("a CONNECT pipelined behind an order is refused after the order's answer: the order is answered 200, not cut off", async () => {
    const restocked = await system.api("POST", "/v1/inventory/PIPE-4:restock", { body: { quantity: 10, name: "Pipe", unitPriceMinor: "100", currencyCode: "USD" } });
    expect(restocked.status).toBe(200);
    const order = JSON.stringify({ customerId: "pipelined-4", items: [{ sku: "PIPE-4", quantity: 1 }] });
    const post = `POST /v1/orders HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(order)}\r\n\r\n${order}`;
    expect(await pipelined(`${post}CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n`, 2)).toEqual(["HTTP/1.1 200", "HTTP/1.1 405"]);
  });

  test("a client that sends Expect: 100-continue with a body within the limit is told to go on, and its body is read", async () => {
    const { hostname, port } = new URL(system.baseUrl);
    const body = JSON.stringify({ customerId: "alice", items: [{ sku: "NO-SUCH-SKU", quantity: 1 }] });
    const request = httpRequest({
      host: hostname,
      port,
      method: "POST",
      path: "/v1/orders",
      headers: { authorization: `Bearer ${system.tokens.admin}`, "content-type": "application/json", "content-length": Buffer.byteLength(body), expect: "100-continue" },
    });
    let continued = false;
    request.on("continue", () => {
      continued = true;
      request.end(body);
    });
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      request.on("error", reject);
      request.on("response", (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (data: string) => (text += data));
        response.on("end", () => resolve({ status: response.statusCode!, text }));
      });
    });
    expect({ continued, status: answer.status, reason: reasonOf(JSON.parse(answer.text)) }).toEqual({ continued: true, status: 400, reason: "UNKNOWN_SKU" });
  });

  test("clients asking for deadlines too short to meet get 504, but do not open the gateway's breakers for everyone else", async () => {
    const restocked = await system.api("POST", "/v1/inventory/SHORT-1:restock", { body: { quantity: 100, name: "Short", unitPriceMinor: "100", currencyCode: "USD" } });
    expect(restocked.status).toBe(200);
    const order = { customerId: "alice", items: [{ sku: "SHORT-1", quantity: 1 }] };
    const created = await system.api("POST", "/v1/orders", { body: order });
    expect(created.status).toBe(200);
    // Twice the breaker's five consecutive failures, each way: a 1 ms budget, and a wait for a version that never comes.
    const impatient = await Promise.all(
      Array.from({ length: 10 }, () => system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "NO-SUCH-SKU", quantity: 1 }] }, headers: { "x-request-timeout": "1" } })),
    );
    // 504 (the order service refuses a change with under 20 ms left, if the gateway's own timer has not fired first);
    // never a breaker's 503.
    expect(impatient.map((r) => r.status)).toEqual(Array(10).fill(504));
    const waiting = await Promise.all(
      // (Under the breaker's 1 s slow-call bound: were the gateway to stall past the query's own answer, its deadline is excused too.)
      Array.from({ length: 10 }, () => system.api("GET", `/v1/orders/${created.body.id}?minVersion=999`, { headers: { "x-request-timeout": "900" } })),
    );
    expect(waiting.map((r) => r.status)).toEqual(Array(10).fill(504));
    // Everyone else is still served.
    expect((await system.api("POST", "/v1/orders", { body: order })).status).toBe(200);
    expect((await system.api("GET", `/v1/orders/${created.body.id}?minVersion=1`)).status).toBe(200);
  });

  test("a caller may have QUERY_MAX_WAITS_PER_CALLER reads waiting for a minVersion; more get 429 TOO_MANY_WAITS at once, while other callers' waits and reads go on", async () => {
    await system.api("POST", "/v1/inventory/WAIT-1:restock", { body: { quantity: 100, name: "Wait", unitPriceMinor: "100", currencyCode: "USD" } });
    const order = (customerId: string) => system.api("POST", "/v1/orders", { as: customerId as "alice" | "bob", body: { customerId, items: [{ sku: "WAIT-1", quantity: 1 }] } });
    const [alices, bobs] = [await order("alice"), await order("bob")];
    const wait = (id: string, timeoutMs: number) => system.api("GET", `/v1/orders/${id}?minVersion=99`, { as: "alice", headers: { "x-request-timeout": String(timeoutMs) } });
    // Twelve waits for versions that never come, on ids unknown to the read model.
    const held = Array.from({ length: 12 }, (_, n) => wait(`ord_never_${n}`, 6000));
    let refused: Awaited<ReturnType<typeof wait>> | undefined;
    await waitFor(async () => (refused = await wait("ord_never_x", 300)).status === 429, "a thirteenth wait to be refused", 5000, 50);
    expect(reasonOf(refused!.body)).toBe("TOO_MANY_WAITS");
    expect(refused!.headers.get("retry-after")).toBe("1");
    // Bob's waits are his own (his wait for a version that never comes ends unreached, it is not refused); reads that need
    // no wait are served to both. (A budget long enough that the query service's answer, a tenth of it early, comes
    // before the gateway's deadline on a slow machine.)
    const bobWaits = await system.api("GET", "/v1/orders/ord_never_bob?minVersion=1", { as: "bob", headers: { "x-request-timeout": "1500" } });
    expect([bobWaits.status, reasonOf(bobWaits.body)]).toEqual([504, "VERSION_NOT_REACHED"]);
    expect((await system.api("GET", `/v1/orders/${bobs.body.id}?minVersion=1`, { as: "bob" })).status).toBe(200);
    expect((await system.api("GET", "/v1/customers/bob/orders?pageSize=1", { as: "bob" })).status).toBe(200);
    expect((await system.api("GET", `/v1/orders/${alices.body.id}`, { as: "alice" })).status).toBe(200);
    expect((await Promise.all(held)).map((r) => r.status)).toEqual(Array(12).fill(504));
    // Once they ended, alice may wait again.
    expect((await system.api("GET", `/v1/orders/${alices.body.id}?minVersion=2`, { as: "alice", headers: { "x-request-timeout": "3000" } })).status).toBe(200);
  });

  test("a change asked with under 20 ms of budget is refused 504 before anything is recorded: no order placed, no stock restocked", async () => {
    await system.api("POST", "/v1/inventory/SHORT-2:restock", { body: { quantity: 50, unitPriceMinor: "100" } });
    const customerId = "short-budget";
    const impatient = await Promise.all(
      ["1", "2", "5", "10", "15", "19"].map(async (timeout) => {
        const created = await system.api("POST", "/v1/orders", { body: { customerId, items: [{ sku: "SHORT-2", quantity: 1 }] }, headers: { "x-request-timeout": timeout } });
        const restocked = await system.api("POST", "/v1/inventory/SHORT-2:restock", { body: { quantity: 1000 }, headers: { "x-request-timeout": timeout } });
        return [created.status, reasonOf(created.body), restocked.status, reasonOf(restocked.body)];
      }),
    );
    expect(impatient).toEqual(Array(6).fill([504, "DEADLINE_EXCEEDED", 504, "DEADLINE_EXCEEDED"]));
    // The inventory holds what it did, and the read model, once it has an order placed after them, no other of theirs.
    expect((await system.api("GET", "/v1/inventory/SHORT-2")).body).toMatchObject({ available: 50, reserved: 0 });
    const placed = await system.api("POST", "/v1/orders", { body: { customerId, items: [{ sku: "SHORT-2", quantity: 1 }] } });
    expect((await system.api("GET", `/v1/orders/${placed.body.id}?minVersion=${placed.body.version}`)).status).toBe(200);
    const listed = await system.api("GET", `/v1/customers/${customerId}/orders`);
    expect(listed.body.orders.map((order: { id: string }) => order.id)).toEqual([placed.body.id]);
  });

  test("a short budget still gets its order reserved and confirmed when the inventory answers in time (not a 202 without asking)", async () => {
    await system.api("POST", "/v1/inventory/QUICK-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
    // 240 ms, under twice the order service's answer margin (DEGRADE_MARGIN_MS 250): half of it goes to the reservation.
    // An idle inventory answers in a few ms; a few tries, so one stall of this shared machine does not decide it.
    const statuses: string[] = [];
    for (let i = 0; i < 5 && !statuses.includes("200 ORDER_STATUS_CONFIRMED"); i++) {
      const r = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "QUICK-1", quantity: 1 }] }, headers: { "x-request-timeout": "240" } });
      statuses.push(`${r.status} ${r.body.status}`);
    }
    expect(statuses).toContain("200 ORDER_STATUS_CONFIRMED");
  });

  test("JSON nested deeper than MAX_JSON_DEPTH (32) gets 400 JSON_TOO_DEEP; shallower nesting reaches validation", async () => {
    const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
    const deep = await system.api("POST", "/v1/orders", { rawBody: `{"customerId":"alice","items":${nested(40)}}` });
    expect({ status: deep.status, reason: reasonOf(deep.body) }).toEqual({ status: 400, reason: "JSON_TOO_DEEP" });
    const deepInString = await system.api("POST", "/v1/orders", { rawBody: `{"customerId":"${nested(40)}","items":[]}` });
    expect(reasonOf(deepInString.body)).not.toBe("JSON_TOO_DEEP"); // brackets inside a string do not nest
    const shallow = await system.api("POST", "/v1/orders", { rawBody: `{"customerId":"alice","items":${nested(10)}}` });
    expect(shallow.status).toBe(400);
    expect(reasonOf(shallow.body)).toBe("INVALID_FIELD");
  });

  test("page sizes over 100 are clamped to 100 (documented); negative ones get 400", async () => {
    for (let i = 0; i < 101; i++) {
      const sku = `PAGE-${String(i).padStart(3, "0")}`;
      const restocked = await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 1, name: sku, unitPriceMinor: "1", currencyCode: "USD" } });
      expect(restocked.status).toBe(200);
    }
    const page = await system.api("GET", "/v1/inventory?pageSize=1000");
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(100);
    expect(page.body.nextPageToken).not.toBe("");
    const negative = await system.api("GET", "/v1/inventory?pageSize=-1");
    expect({ status: negative.status, reason: reasonOf(negative.body) }).toEqual({ status: 400, reason: "VALIDATION_FAILED" });
    expect(negative.body.details.find((d: { fieldViolations?: unknown }) => d.fieldViolations).fieldViolations).toEqual([
      expect.objectContaining({ field: "page_size" }),
    ]);
  });

  test("headers over GATEWAY_MAX_HEADER_BYTES (16 KiB) get 431 HEADERS_TOO_LARGE", async () => {
    const response = await system.api("GET", "/v1/inventory", { headers: { "x-filler": "a".repeat(20 * 1024) } });
    expect({ status: response.status, reason: reasonOf(response.body) }).toEqual({ status: 431, reason: "HEADERS_TOO_LARGE" });
    // Its request id has the form of every other answer's (UUIDv8), and is not another request's.
    const other = (await system.api("GET", "/v1/inventory")).headers.get("x-request-id")!;
    const id = response.headers.get("x-request-id")!;
    for (const each of [id, other]) expect(each).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(id).not.toBe(other);
    // Logged under that id, and counted, like the handler's own refusals (Node's parser refused it before the handler saw it).
    // The log line comes through the gateway's stdout, which may be read after its answer came.
    const logged = await waitFor(() => system.gateway.logs.find((line) => line.includes(id)), "the refusal's log line");
    expect(JSON.parse(logged)).toMatchObject({ requestId: id, status: 431, reason: "HEADERS_TOO_LARGE", msg: "request failed" });
    const metrics = await (await fetch(`${system.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^orderly_gateway_requests_total\{route="unmatched",code="431"\} [1-9]/m);
  });

  test("a client that trickles its headers is cut off after GATEWAY_HEADERS_TIMEOUT_MS with 408", async () => {
    const port = Number(new URL(system.baseUrl).port);
    const socket = connectTcp({ host: "127.0.0.1", port });
    let received = "";
    let closed = false;
    socket.on("data", (chunk) => (received += chunk.toString("latin1")));
    socket.on("close", () => (closed = true));
    socket.on("error", () => (closed = true));
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("GET /v1/inventory HTTP/1.1\r\nhost: orderly\r\n");
    // Keep trickling a header byte now and then, as a slowloris client does: the connection is still cut.
    const trickle = setInterval(() => socket.writable && socket.write("x"), 200);
    try {
      await waitFor(() => closed, "the gateway to close the slow connection", 15_000);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(received).toContain("\"reason\":\"REQUEST_TIMEOUT\"");
  });

  test("an Expect other than 100-continue gets 417 EXPECTATION_FAILED with a reason and a request id, and its request is not run", async () => {
    expect((await system.api("POST", "/v1/inventory/EXPECT-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    const body = JSON.stringify({ customerId: "expecting", items: [{ sku: "EXPECT-1", quantity: 1 }] });
    const answer = await exchange(`POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\nexpect: something-else\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n`, body);
    expect(answer).toMatch(/^HTTP\/1\.1 417 /);
    expect(answer).toContain('"reason":"EXPECTATION_FAILED"');
    expect(answer.toLowerCase()).toMatch(/\r\nx-request-id: \S+/);
    // Not run: nothing was reserved (the inventory is the write side, read at once).
    expect((await system.api("GET", "/v1/inventory/EXPECT-1")).body).toMatchObject({ available: 5, reserved: 0 });
    // Pipelined behind another request, it is answered after that one's answer, on the same connection.
    const pipelined = await exchange(
      `GET /v1/inventory/EXPECT-1 HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\n\r\n` +
        `POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\nexpect: something-else\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n`,
      body,
    );
    // (A body ends without a line break: the next status line follows it directly.)
    expect(pipelined.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 417"]);
  });

  test("a client that stops sending its body gets 408 REQUEST_TIMEOUT at its deadline, not the server's 40 s request timeout", async () => {
    const stalled = openStalledBody(Number(new URL(system.baseUrl).port), system.tokens.customers.alice!, "1000");
    const started = Date.now();
    const received = await stalled.answered;
    const elapsed = Date.now() - started;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(received).toContain('"reason":"REQUEST_TIMEOUT"');
    expect(received.toLowerCase()).toContain("connection: close");
    // At its deadline: well past the second it asked for (the budget starts once the headers are in), far short of 40 s.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(15_000);
  });

  /** What the gateway answers to a raw request (which asks it to close the connection after). */
  function exchange(head: string, body = ""): Promise<string> {
    return rawExchange(Number(new URL(system.baseUrl).port), `${head}connection: close\r\n\r\n${body}`);
  }

  test("an HTTP/1.1 request without Host gets 400 MALFORMED_REQUEST with a reason, like any other malformed request; HTTP/1.0 needs none", async () => {
    const without = await exchange("GET /healthz HTTP/1.1\r\n");
    expect(without).toMatch(/^HTTP\/1\.1 400 /);
    expect(without).toMatch(/\r\nx-request-id: /i);
    expect(without).toContain('"reason":"MALFORMED_REQUEST"');
    expect(await exchange("GET /healthz HTTP/1.0\r\n")).toMatch(/^HTTP\/1\.1 200 /);
    expect(await exchange("GET /healthz HTTP/1.1\r\nhost: orderly\r\n")).toMatch(/^HTTP\/1\.1 200 /);
  });

  test("a request with two Host headers gets 400 MALFORMED_REQUEST (RFC 9112 §3.2), on the API's routes too, and is not run", async () => {
    const bearer = `authorization: Bearer ${system.tokens.admin}\r\n`;
    for (const head of ["GET /healthz HTTP/1.1\r\nhost: orderly\r\nhost: elsewhere\r\n", `GET /v1/inventory?pageSize=1 HTTP/1.1\r\nhost: orderly\r\n${bearer}host: orderly\r\n`]) {
      const answer = await exchange(head);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('"reason":"MALFORMED_REQUEST"');
      expect(answer).toContain("one Host header");
    }
    expect((await system.api("POST", "/v1/inventory/HOSTS-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    const body = JSON.stringify({ customerId: "hosts", items: [{ sku: "HOSTS-1", quantity: 1 }] });
    const order = `POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nhost: orderly\r\n${bearer}content-type: application/json\r\ncontent-length: ${body.length}\r\n`;
    expect(await exchange(order, body)).toMatch(/^HTTP\/1\.1 400 /);
    expect((await system.api("GET", "/v1/inventory/HOSTS-1")).body).toMatchObject({ available: 5, reserved: 0 });
  });

  test("a body in a transfer coding besides chunked gets 400 UNSUPPORTED_TRANSFER_ENCODING and is not run, not read as if it were not coded", async () => {
    expect((await system.api("POST", "/v1/inventory/CODED-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    // A plain JSON order labelled gzip: read as it is, it would be placed.
    const body = JSON.stringify({ customerId: "coded", items: [{ sku: "CODED-1", quantity: 1 }] });
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    for (const coding of ["gzip, chunked", "identity, chunked"]) {
      const answer = await exchange(`POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-type: application/json\r\ntransfer-encoding: ${coding}\r\n`, chunked);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('"reason":"UNSUPPORTED_TRANSFER_ENCODING"');
    }
    expect((await system.api("GET", "/v1/inventory/CODED-1")).body).toMatchObject({ available: 5, reserved: 0 });
    // Chunked alone, in any case, is read.
    const placed = await exchange(`POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-type: application/json\r\ntransfer-encoding: Chunked\r\n`, chunked);
    expect(placed).toMatch(/^HTTP\/1\.1 200 /);
    expect((await system.api("GET", "/v1/inventory/CODED-1")).body).toMatchObject({ available: 4, reserved: 1 });
  });

  test("a CONNECT request gets 405 METHOD_NOT_ALLOWED with a reason and Allow, not a connection closed unanswered", async () => {
    for (const target of ["/v1/stock", "127.0.0.1:443"]) {
      const answer = await exchange(`CONNECT ${target} HTTP/1.1\r\nhost: orderly\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 405 /);
      expect(answer).toMatch(/\r\nallow: GET, HEAD, POST\r\n/i);
      expect(answer).toMatch(/\r\nx-request-id: /i);
      expect(answer).toContain('"reason":"METHOD_NOT_ALLOWED"');
    }
    // A client that resets the connection after its CONNECT does not bring the gateway down.
    for (let i = 0; i < 3; i++) {
      const socket = connectTcp({ host: "127.0.0.1", port: Number(new URL(system.baseUrl).port) });
      socket.on("error", () => undefined);
      // A gateway already gone refuses the connection: the loop ends, and the check below fails.
      const connected = await new Promise<boolean>((resolve) => socket.once("connect", () => resolve(true)).once("close", () => resolve(false)));
      if (!connected) break;
      socket.write("CONNECT 127.0.0.1:443 HTTP/1.1\r\nhost: orderly\r\n\r\n");
      await new Promise<void>((resolve) => socket.once("data", () => resolve()).once("close", () => resolve()));
      socket.resetAndDestroy();
    }
    expect(await exchange("GET /healthz HTTP/1.1\r\nhost: orderly\r\n")).toMatch(/^HTTP\/1\.1 200 /);
  });

  test("an absolute-form request target (RFC 9112 §3.2.2) is routed by its path", async () => {
    const bearer = `authorization: Bearer ${system.tokens.admin}\r\n`;
    expect(await exchange("GET http://orderly.example/healthz HTTP/1.1\r\nhost: orderly\r\n")).toMatch(/^HTTP\/1\.1 200 /);
    const listed = await exchange(`GET http://orderly.example:8080/v1/inventory?pageSize=1 HTTP/1.1\r\nhost: orderly\r\n${bearer}`);
    expect(listed).toMatch(/^HTTP\/1\.1 200 /);
    expect(listed).toContain('"items":[');
    expect(await exchange("GET http://orderly.example/v1/inventory HTTP/1.1\r\nhost: orderly\r\n")).toMatch(/^HTTP\/1\.1 401 /);
    expect(await exchange(`GET http://orderly.example HTTP/1.1\r\nhost: orderly\r\n${bearer}`)).toContain('"reason":"ROUTE_NOT_FOUND"');
  });

  test("a header that may appear once, sent twice, is refused rather than one of its values picked: two Authorization headers are 401, two Idempotency-Keys 400", async () => {
    const host = "host: orderly\r\n";
    const admin = `authorization: Bearer ${system.tokens.admin}\r\n`;
    const alice = `authorization: Bearer ${system.tokens.customers.alice}\r\n`;
    expect(await exchange(`GET /v1/inventory?pageSize=1 HTTP/1.1\r\n${host}${admin}`)).toMatch(/^HTTP\/1\.1 200 /);
    for (const [first, second] of [[alice, admin], [admin, alice], [admin, admin]]) {
      const twice = await exchange(`GET /v1/inventory?pageSize=1 HTTP/1.1\r\n${host}${first}${second}`);
      expect(twice).toMatch(/^HTTP\/1\.1 401 /);
      expect(twice).toContain('"reason":"INVALID_CREDENTIALS"');
    }
    const restocked = await system.api("POST", "/v1/inventory/TWICE-1:restock", { body: { quantity: 10, name: "Twice", unitPriceMinor: "100", currencyCode: "USD" } });
    expect(restocked.status).toBe(200);
    const body = JSON.stringify({ customerId: "alice", items: [{ sku: "TWICE-1", quantity: 1 }] });
    const order = `POST /v1/orders HTTP/1.1\r\n${host}${alice}content-type: application/json\r\ncontent-length: ${body.length}\r\n`;
    const keys = "idempotency-key: twice-a\r\nidempotency-key: twice-b\r\n";
    const refused = await exchange(`${order}${keys}`, body);
    expect(refused).toMatch(/^HTTP\/1\.1 400 /);
    expect(refused).toContain('"reason":"INVALID_HEADER"');
    const once = await exchange(`${order}idempotency-key: twice-a\r\n`, body);
    expect(once).toMatch(/^HTTP\/1\.1 200 /);
    // Only the order sent with one key took stock.
    const item = await system.api("GET", "/v1/inventory/TWICE-1");
    expect(item.body).toMatchObject({ available: 9, reserved: 1 });
  });

  test("every header counts: a second Authorization or Host after 2,000 other headers is refused as any doubled one", async () => {
    const many = "x: 1\r\n".repeat(2100);
    const admin = `authorization: Bearer ${system.tokens.admin}\r\n`;
    const alice = `authorization: Bearer ${system.tokens.customers.alice}\r\n`;
    expect(await exchange(`GET /v1/inventory?pageSize=1 HTTP/1.1\r\nhost: orderly\r\n${alice}${many}`)).toMatch(/^HTTP\/1\.1 200 /);
    const twoTokens = await exchange(`GET /v1/inventory?pageSize=1 HTTP/1.1\r\nhost: orderly\r\n${alice}${many}${admin}`);
    expect(twoTokens).toMatch(/^HTTP\/1\.1 401 /);
    expect(twoTokens).toContain('"reason":"INVALID_CREDENTIALS"');
    const twoHosts = await exchange(`GET /healthz HTTP/1.1\r\nhost: orderly\r\n${many}host: elsewhere\r\n`);
    expect(twoHosts).toMatch(/^HTTP\/1\.1 400 /);
    expect(twoHosts).toContain('"reason":"MALFORMED_REQUEST"');
  });

  test("a request asking for an Upgrade is answered and its connection closed: nothing pipelined behind it is run (or left unanswered on an open connection)", async () => {
    expect((await system.api("POST", "/v1/inventory/UPGRADE-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    const body = JSON.stringify({ quantity: 1 });
    const restock = `POST /v1/inventory/UPGRADE-1:restock HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${system.tokens.admin}\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    for (const upgrade of ["websocket", "h2c"]) {
      const { socket, received, ended } = rawConnection();
      try {
        socket.write(`GET /healthz HTTP/1.1\r\nhost: orderly\r\nupgrade: ${upgrade}\r\nconnection: Upgrade\r\n\r\n${restock}`);
        await ended;
        expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(["HTTP/1.1 200"]);
        expect(received()).toMatch(/\r\nconnection: close\r\n/i);
      } finally {
        socket.destroy();
      }
    }
    expect((await system.api("GET", "/v1/inventory/UPGRADE-1")).body).toMatchObject({ available: 5 });
  });

  test("an HTTP/1.0 request with a Transfer-Encoding is refused 400 MALFORMED_REQUEST and its connection closed (RFC 9112 §6.1), and is not run", async () => {
    expect((await system.api("POST", "/v1/inventory/OLD-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    const body = JSON.stringify({ quantity: 1 });
    // With a Host, and without one (which HTTP/1.0 may leave out).
    for (const host of ["host: orderly\r\n", ""]) {
      const { socket, received, ended } = rawConnection();
      try {
        socket.write(
          `POST /v1/inventory/OLD-1:restock HTTP/1.0\r\n${host}authorization: Bearer ${system.tokens.admin}\r\nconnection: keep-alive\r\n` +
            `transfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\nGET /healthz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n`,
        );
        await ended;
        expect(received().match(/HTTP\/1\.1 \d+/g)).toEqual(["HTTP/1.1 400"]);
        expect(received()).toContain('"reason":"MALFORMED_REQUEST"');
      } finally {
        socket.destroy();
      }
    }
    expect((await system.api("GET", "/v1/inventory/OLD-1")).body).toMatchObject({ available: 5 });
  });

  test("another HTTP version, a Host that is no host, and a request target with a fragment get 400 MALFORMED_REQUEST", async () => {
    const bearer = `authorization: Bearer ${system.tokens.admin}\r\n`;
    for (const head of [
      "GET /healthz HTTP/2.0\r\nhost: orderly\r\n",
      "GET /healthz HTTP/1.1\r\nhost: a/b@c\r\n",
      `GET /v1/inventory/MUG-1#top HTTP/1.1\r\nhost: orderly\r\n${bearer}`,
      `GET /v1/inventory/MUG-1#top HTTP/1.0\r\n${bearer}`,
    ]) {
      const answer = await exchange(head);
      expect(answer).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer).toContain('"reason":"MALFORMED_REQUEST"');
    }
    for (const host of ["orderly", "orderly.example:8080", "127.0.0.1:80", "[::1]:8080", "[fe80::1%25eth0]:8080", "xn--bcher-kva.example", "my_host.local.", "ORDERLY"]) {
      expect(await exchange(`GET /healthz HTTP/1.1\r\nhost: ${host}\r\n`)).toMatch(/^HTTP\/1\.1 200 /);
    }
  });

  test("HEAD of a path with no route, or of a custom method's path, has its GET's headers, Content-Length too", async () => {
    const bearer = `authorization: Bearer ${system.tokens.admin}\r\n`;
    for (const path of ["/v1/nothing", "/v1/orders/ord_1:cancel"]) {
      const headersOf = async (method: string) => {
        const answer = await exchange(`${method} ${path} HTTP/1.1\r\nhost: orderly\r\n${bearer}`);
        return { status: answer.split("\r\n")[0], length: /\r\ncontent-length: (\d+)/i.exec(answer)?.[1] };
      };
      const get = await headersOf("GET");
      expect(get.length).toBeDefined();
      expect(await headersOf("HEAD")).toEqual(get);
    }
  });

  test("a client that sends Expect: 100-continue is told to go on only once its request would read the body: without a token it hears its 401 first", async () => {
    expect(await blastBody("expect-continue", 1024, { authorization: "" })).toEqual({ statusLine: "HTTP/1.1 401 Unauthorized", reason: "AUTHENTICATION_REQUIRED", continued: false });
  });

  test("an HTTP/1.0 client's Expect is ignored (RFC 9110 §10.1.1): it gets no 100 Continue, only its answer", async () => {
    expect((await system.api("POST", "/v1/inventory/EXPECT-10:restock", { body: { quantity: 5 } })).status).toBe(200);
    const body = JSON.stringify({ quantity: 1 });
    for (const expectation of ["100-continue", "something-else"]) {
      const answer = await exchange(
        `POST /v1/inventory/EXPECT-10:restock HTTP/1.0\r\nauthorization: Bearer ${system.tokens.admin}\r\nexpect: ${expectation}\r\ncontent-length: ${body.length}\r\n`,
        body,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      expect(answer).not.toContain("100 Continue");
    }
    expect((await system.api("GET", "/v1/inventory/EXPECT-10")).body).toMatchObject({ available: 7 });
  });

  test("a write with Expect: 100-continue pipelined behind a slow read gets its go-ahead after the read's answer, and is not timed out (408) for that wait", async () => {
    expect((await system.api("POST", "/v1/inventory/BEHIND-1:restock", { body: { quantity: 5 } })).status).toBe(200);
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "behind", items: [{ sku: "BEHIND-1", quantity: 1 }] } });
    expect(created.status).toBe(200);
    const id = (created.body as { id: string }).id;
    const bearer = `authorization: Bearer ${system.tokens.admin}\r\n`;
    const body = JSON.stringify({ quantity: 1 });
    const { socket, received } = rawConnection();
    const statuses = (): string[] => received().match(/HTTP\/1\.1 \d+/g) ?? [];
    try {
      // The read waits ~1.35 s for a version that never comes; the write behind it has a budget of 1 s.
      socket.write(
        `GET /v1/orders/${id}?minVersion=99 HTTP/1.1\r\nhost: orderly\r\n${bearer}x-request-timeout: 1500\r\n\r\n` +
          `POST /v1/inventory/BEHIND-1:restock HTTP/1.1\r\nhost: orderly\r\n${bearer}x-request-timeout: 1000\r\nexpect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`,
      );
      await waitFor(() => statuses().includes("HTTP/1.1 100"), "the go-ahead");
      socket.write(`${body}GET /healthz HTTP/1.1\r\nhost: orderly\r\n\r\n`);
      await waitFor(() => statuses().length >= 4, "four answers");
      // Its budget was spent behind the read (it counts from the write's arrival): 504, and the connection goes on.
      expect(statuses()).toEqual(["HTTP/1.1 504", "HTTP/1.1 100", "HTTP/1.1 504", "HTTP/1.1 200"]);
      expect(received()).toContain('"reason":"VERSION_NOT_REACHED"');
      expect(received()).toContain('"reason":"DEADLINE_EXCEEDED"');
      expect(received()).not.toContain("REQUEST_TIMEOUT");
    } finally {
      socket.destroy();
    }
  });

  test("a gRPC message over the 4 MiB limit is refused with RESOURCE_EXHAUSTED, and nothing is stored", async () => {
    const connection = connect(`127.0.0.1:${system.inventory.port}`, { maxMessageBytes: 16 * 1024 * 1024 });
    try {
      const inventory = createClient(InventoryService, connection);
      const error = await inventory
        .restock(
          { sku: "HUGE-1", quantity: 1, name: "n".repeat(5 * 1024 * 1024) },
          { metadata: { authorization: `Bearer ${system.tokens.admin}` }, deadline: Date.now() + 10_000 },
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(OrderlyError);
      expect(Code[(error as OrderlyError).code]).toBe("RESOURCE_EXHAUSTED");
    } finally {
      connection.close();
    }
    expect((await system.api("GET", "/v1/inventory/HUGE-1")).status).toBe(404);
  });
});

/**
 * A POST /v1/orders whose body stops after its first bytes, as alice with an
 * X-Request-Timeout of `budgetMs`: `answered` settles with all the gateway
 * wrote once it closes the connection.
 */
function openStalledBody(port: number, token: string, budgetMs: string): { answered: Promise<string>; close(): void } {
  const socket = connectTcp({ host: "127.0.0.1", port });
  let received = "";
  socket.on("data", (chunk) => (received += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  const answered = new Promise<string>((resolve) => socket.once("close", () => resolve(received)));
  socket.write(
    `POST /v1/orders HTTP/1.1\r\nhost: orderly\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\n` +
      `x-request-timeout: ${budgetMs}\r\ncontent-length: 100\r\n\r\n{"customerId":"stall"`,
  );
  return { answered, close: () => socket.destroy() };
}

test("a principal may have GATEWAY_MAX_IN_FLIGHT_PER_CALLER requests in flight; more get 429 TOO_MANY_IN_FLIGHT at once, while other callers are served", async () => {
  await using system = await startSystem({ GATEWAY_MAX_IN_FLIGHT_PER_CALLER: "3", GATEWAY_CACHE_TTL_MS: "60000" });
  const port = Number(new URL(system.baseUrl).port);
  await system.api("POST", "/v1/inventory/SHARE-1:restock", { body: { quantity: 5 } });
  const placed = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "SHARE-1", quantity: 1 }] }, as: "alice" });
  const orderPath = `/v1/orders/${placed.body.id}`;
  await waitFor(async () => (await system.api("GET", orderPath, { as: "alice" })).headers.get("x-cache") === "hit", "alice's order cached");
  const inFlight = async () => (await api(system.baseUrl, "GET", "/healthz")).body.inFlight as number;
  const stalled = Array.from({ length: 3 }, () => openStalledBody(port, system.tokens.customers.alice!, "20000"));
  try {
    await waitFor(async () => (await inFlight()) === 3, "alice's three stalled requests in flight");
    const refused = await system.api("GET", "/v1/inventory", { as: "alice" });
    expect({ status: refused.status, reason: reasonOf(refused.body), retryAfter: refused.headers.get("retry-after") }).toEqual({ status: 429, reason: "TOO_MANY_IN_FLIGHT", retryAfter: "1" });
    // A cache hit is answered at once, never in flight: it is served at the limit too.
    const hit = await system.api("GET", orderPath, { as: "alice" });
    expect({ status: hit.status, cache: hit.headers.get("x-cache") }).toEqual({ status: 200, cache: "hit" });
    expect((await system.api("GET", "/v1/inventory", { as: "bob" })).status).toBe(200);
  } finally {
    for (const request of stalled) request.close();
  }
  await waitFor(async () => (await inFlight()) === 0, "alice's requests ended with their connections");
  expect((await system.api("GET", "/v1/inventory", { as: "alice" })).status).toBe(200);
});

test("each principal gets RATE_LIMIT_BURST requests at once, then 429 RATE_LIMITED with Retry-After; other principals are not affected", async () => {
  await using system = await startSystem({ RATE_LIMIT_BURST: "5", RATE_LIMIT_PER_SECOND: "1" });
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await system.api("GET", "/v1/inventory", { as: "alice" })).status);
  expect(statuses).toEqual([200, 200, 200, 200, 200]);
  const limited = await system.api("GET", "/v1/inventory", { as: "alice" });
  expect({ status: limited.status, reason: reasonOf(limited.body) }).toEqual({ status: 429, reason: "RATE_LIMITED" });
  expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  expect((await system.api("GET", "/v1/inventory", { as: "bob" })).status).toBe(200);
  // After Retry-After, alice may call again (one token per second refills).
  await waitFor(async () => (await system.api("GET", "/v1/inventory", { as: "alice" })).status === 200, "alice's bucket to refill", 10_000, 250);
  // Callers without valid credentials are limited per address, so guessing tokens is limited too.
  const anonymous: number[] = [];
  for (let i = 0; i < 6; i++) anonymous.push((await api(system.baseUrl, "GET", "/v1/inventory")).status);
  expect(anonymous).toEqual([401, 401, 401, 401, 401, 429]);
});
