import { connect, type Socket } from "node:net";
import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { authorization, reasonOf, startSystem, type ApiResponse, type System } from "../helpers/system.js";

/** An order of alice's for one MUG-1, confirmed. */
async function confirmedOrder(system: System): Promise<{ id: string; version: string }> {
  await system.api("POST", "/v1/inventory/MUG-1:restock", { body: { quantity: 20, unitPriceMinor: "450" } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "MUG-1", quantity: 1 }] } });
  expect(created.status).toBe(200);
  return created.body;
}

/** Waits until the gateway counts `n` API requests in flight (its /healthz says). */
async function inFlightAtGateway(system: System, n: number): Promise<void> {
  await waitFor(async () => (await system.api("GET", "/healthz")).body.inFlight === n, `${n} request(s) in flight at the gateway`);
}

/** What a client sees of a shutdown: the answer's status, reason and Retry-After. */
function seen(answer: ApiResponse) {
  return { status: answer.status, reason: reasonOf(answer.body), retryAfter: answer.headers.get("retry-after") };
}

const UNAVAILABLE = { status: 503, reason: "SERVICE_UNAVAILABLE", retryAfter: "1" };

/** What the gateway logs when its drain ends with requests still in flight. */
const STOPPED_WAITING = "stopped waiting for the requests in flight";

test("a gateway stopped with a request waiting for a service answers it 503 SERVICE_UNAVAILABLE after its drain, closes the connection, and exits 0", async () => {
  await using system = await startSystem();
  const order = await confirmedOrder(system);
  // A read that waits for a version the order never reaches, with a budget longer than the shutdown's grace.
  const waiting = system.api("GET", `/v1/orders/${order.id}?minVersion=99`, { headers: { "X-Request-Timeout": "30000" } });
  await inFlightAtGateway(system, 1);
  const stopped = performance.now();
  const exit = system.gateway.stop("SIGTERM", 20_000);
  const answer = await waiting;
  const answeredAfter = performance.now() - stopped;
  expect(seen(answer)).toEqual(UNAVAILABLE);
  expect(answer.headers.get("connection")).toBe("close");
  // It waited out the drain (5 s) for the request, then answered well within runMain's grace (10 s).
  expect(answeredAfter).toBeGreaterThan(4500);
  expect(answeredAfter).toBeLessThan(9000);
  expect(await exit).toBe(0);
  const logs = system.gateway.logs.join("\n");
  expect(logs).toContain(STOPPED_WAITING);
  expect(logs).not.toMatch(/took too long|"level":50/);
});

test("a gateway stopped with a request that finishes within the drain lets it finish, and exits 0 without waiting out the drain", async () => {
  await using system = await startSystem({ FAULT_DELAY_MS: "3000", FAULT_DELAY_METHODS: "GetItem" });
  await system.api("POST", "/v1/inventory/MUG-1:restock", { body: { quantity: 20, unitPriceMinor: "450" } });
  // The inventory answers GetItem after 3 s, well within the drain (5 s).
  const reading = system.api("GET", "/v1/inventory/MUG-1");
  await inFlightAtGateway(system, 1);
  const exit = system.gateway.stop("SIGTERM", 20_000);
  const answer = await reading;
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ sku: "MUG-1", available: 20 });
  expect(answer.headers.get("connection")).toBe("close");
  expect(await exit).toBe(0);
  expect(system.gateway.logs.join("\n")).not.toContain(STOPPED_WAITING);
});

/** One HTTP/1.1 exchange on a connection of the caller's: the answer's status, Connection header and body, or "cut off" when the connection closed first. */
function exchange(socket: Socket, request: string): Promise<{ status: number; connection: string | undefined; body: string } | "cut off"> {
  return new Promise((resolve) => {
    // Closed while it was idle (the close event has passed).
    if (socket.destroyed || socket.readableEnded) return resolve("cut off");
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = received.subarray(0, end).toString("latin1").split("\r\n");
      const header = (name: string) => head.find((line) => line.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
      const length = Number(header("content-length"));
      if (received.length < end + 4 + length) return;
      done({ status: Number(head[0]!.split(" ")[1]), connection: header("connection"), body: received.subarray(end + 4, end + 4 + length).toString("utf8") });
    };
    const onClose = () => done("cut off");
    const done = (answer: Awaited<ReturnType<typeof exchange>>) => {
      socket.off("data", onData).off("close", onClose);
      resolve(answer);
    };
    socket.on("data", onData).once("close", onClose);
    socket.write(request);
  });
}

test("a gateway stopped as a client sends its next request on a kept-alive connection answers it (with Connection: close) rather than cutting the connection under it", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/MUG-1:restock", { body: { quantity: 20, unitPriceMinor: "450" } });
  const { hostname, port } = new URL(system.baseUrl);
  const order = (key: string) => {
    const body = JSON.stringify({ customerId: "alice", items: [{ sku: "MUG-1", quantity: 1 }] });
    const headers = { ...authorization(system.tokens, "alice"), "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "idempotency-key": key };
    return `POST /v1/orders HTTP/1.1\r\nhost: ${hostname}:${port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;
  };
  const socket = connect(Number(port), hostname);
  socket.on("error", () => undefined);
  try {
    const first = await exchange(socket, order("kept-alive-1"));
    expect(first).toMatchObject({ status: 200, connection: "keep-alive" });
    // Idle between requests as the gateway is stopped; its next request goes out once the gateway takes no new connection.
    const exit = system.gateway.stop("SIGTERM", 20_000);
    const refused = () => new Promise<boolean>((resolve) => connect(Number(port), hostname).once("connect", function (this: Socket) { this.destroy(); resolve(false); }).once("error", () => resolve(true)));
    await waitFor(refused, "the gateway to stop taking connections");
    const second = await exchange(socket, order("kept-alive-2"));
    expect(second).toMatchObject({ status: 200, connection: "close" });
    expect(second !== "cut off" && JSON.parse(second.body).status).toBe("ORDER_STATUS_CONFIRMED");
    expect(await exit).toBe(0);
  } finally {
    socket.destroy();
  }
});

test("a query service stopped with a minVersion read waiting answers it 503 SERVICE_UNAVAILABLE (not 499: the client did not cancel), and exits 0", async () => {
  await using system = await startSystem();
  const order = await confirmedOrder(system);
  const waiting = system.api("GET", `/v1/orders/${order.id}?minVersion=99`, { headers: { "X-Request-Timeout": "30000" } });
  await inFlightAtGateway(system, 1);
  // A read the query service answers after it (one HTTP/2 connection, streams taken in order): the wait has reached it.
  // (Stopped before it arrives, a call is refused as UNAVAILABLE: the gateway's retries end in DEPENDENCY_UNAVAILABLE.)
  expect((await system.api("GET", "/v1/customers/alice/orders")).status).toBe(200);
  const exit = system.query.stop("SIGTERM", 20_000);
  expect(seen(await waiting)).toEqual(UNAVAILABLE);
  expect(await exit).toBe(0);
  expect(system.query.logs.join("\n")).not.toMatch(/took too long|"level":50/);
});

test("an order service stopped while a creation waits for the inventory answers 503 SERVICE_UNAVAILABLE, closes its database only after, and a retry with the same key gets the order", async () => {
  // The inventory takes 20 s to reserve; the order service waits for it (one attempt, up to 30 s).
  await using system = await startSystem({ FAULT_DELAY_MS: "20000", FAULT_DELAY_METHODS: "ReserveStock", INVENTORY_ATTEMPT_TIMEOUT_MS: "30000" });
  await system.api("POST", "/v1/inventory/MUG-1:restock", { body: { quantity: 20, unitPriceMinor: "450" } });
  const create = () =>
    system.api("POST", "/v1/orders", {
      body: { customerId: "alice", items: [{ sku: "MUG-1", quantity: 1 }] },
      headers: { "Idempotency-Key": "shutdown-1", "X-Request-Timeout": "30000" },
    });
  const creating = create();
  // The order service is calling the inventory for it (so the creation has reached the order service).
  await waitFor(async () => (await (await fetch(`http://127.0.0.1:${system.order.adminPort}/metrics`)).text()).match(/^orderly_dependency_bulkhead_in_use\{dependency="inventory"[^}]*\} 1$/m), "the reservation in flight");
  const exit = system.order.stop("SIGTERM", 20_000);
  expect(seen(await creating)).toEqual(UNAVAILABLE);
  expect(await exit).toBe(0);
  expect(system.order.logs.join("\n")).not.toMatch(/took too long|"level":50/);

  // Back, with an inventory that answers at once: the order was kept (PENDING) and is settled.
  await system.restart("inventory", { FAULT_DELAY_MS: "0" });
  await system.restart("order");
  const retried = await create();
  expect([200, 202]).toContain(retried.status);
  expect(retried.body).toMatchObject({ customerId: "alice", items: [{ sku: "MUG-1", quantity: 1 }] });
  const settled = await system.api("GET", `/v1/orders/${retried.body.id}?minVersion=2`, { headers: { "X-Request-Timeout": "20000" } });
  expect(settled.body.status).toBe("ORDER_STATUS_CONFIRMED");
});

test("services stopped while nats-server is hung (SIGSTOP: the connection stands, nothing answers) exit 0 within a few seconds, not at the grace's end", async () => {
  await using system = await startSystem();
  await confirmedOrder(system);
  system.nats.child().kill("SIGSTOP");
  try {
    // An event waits in the order service's outbox, and the consumers sit in their pulls.
    expect((await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "MUG-1", quantity: 1 }] } })).status).toBe(200);
    const stopped = await Promise.all(
      (["order", "inventory", "query"] as const).map(async (name) => {
        const started = performance.now();
        const code = await system[name].stop("SIGTERM", 20_000);
        return { name, code, ms: performance.now() - started, tooLong: system[name].logs.some((line) => line.includes("took too long")) };
      }),
    );
    console.log(`[figures] stopped with nats-server hung: ${stopped.map((s) => `${s.name} ${s.code} in ${Math.round(s.ms)} ms`).join(", ")}`);
    // Within the 10 s grace, of which the drain of the NATS connection is given 2 s: before, each took all of it and exited 1.
    for (const s of stopped) expect({ name: s.name, code: s.code, tooLong: s.tooLong }).toEqual({ name: s.name, code: 0, tooLong: false });
  } finally {
    system.nats.child().kill("SIGCONT");
  }
});

test("a gateway whose log output is not read for a while (its reader stalled) holds at most 4 MiB of lines, says how many it dropped, and stops on SIGTERM with exit 0 while its output is still not read", async () => {
  // pino held every line until the reader took it, and its exit waited for the reader for good (SIGKILLed here).
  await using system = await startSystem();
  const output = system.gateway.child.stdout!;
  /**
   * Sends reads of no route (a path of 125 more plain segments, 8 KB), each logged with its URL and a message quoting
   * it (a path's plain segments are shown): `count` of them.
   */
  const loggedReads = async (count: number) => {
    const padding = Array.from({ length: 125 }, () => "x".repeat(63)).join("/");
    for (let sent = 0; sent < count; sent += 25) {
      const statuses = await Promise.all(Array.from({ length: 25 }, (_, i) => system.api("GET", `/v1/inventory/NONE-${i}/${padding}`).then((answer) => answer.status)));
      expect(new Set(statuses)).toEqual(new Set([404]));
    }
  };
  output.pause();
  await loggedReads(700);
  output.resume();
  await waitFor(() => system.gateway.logs.some((line) => line.includes("log lines dropped")), "the gateway's count of the lines it dropped", 30_000);
  // One report for what was dropped while it was paused (the output takes lines again in many writes).
  const reports = system.gateway.logs.filter((line) => line.includes("log lines dropped")).map((line) => (JSON.parse(line) as { dropped: number }).dropped);
  expect(reports).toHaveLength(1);
  expect(reports[0]).toBeGreaterThan(0);
  // Paused again, and filled past what the socket between them holds (~0.2 MB): the stop's last lines are not taken.
  output.pause();
  await loggedReads(100);
  expect(await system.gateway.stop("SIGTERM", 20_000)).toBe(0);
});
