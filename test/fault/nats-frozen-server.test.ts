import { writeFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { expect, test } from "vitest";
import { connectNats } from "../../shared/events/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { startNats } from "../helpers/nats.js";
import { once, waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

/** The port of the NATS server a service's log says it is connected to ("nats connected", with the server's host:port). */
function natsPortOf(logs: readonly string[]): number {
  const line = logs.find((l) => l.includes('"nats connected"'));
  const server = line === undefined ? undefined : (JSON.parse(line) as { server?: string }).server;
  if (server === undefined) throw new Error("the service has not logged its NATS connection");
  return Number(server.split(":").pop());
}

test("a JetStream cluster server that hangs (SIGSTOP, not dead) under the query service holds up the events only seconds: it moves to a live server and an order's events reach the read model within 25 s (~50 s before)", async () => {
  await using system = await startSystem({ STREAM_REPLICAS: "3" }, { natsCluster: 3 });
  const cluster = system.natsCluster!;
  const ports = cluster.servers.map((server) => server.port);
  await system.api("POST", "/v1/inventory/FRZ-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  const before = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FRZ-1", quantity: 1 }] } });
  expect((await system.api("GET", `/v1/orders/${before.body.id}?minVersion=${before.body.version}`)).status).toBe(200);
  const frozen = ports.indexOf(natsPortOf(system.query.logs));
  expect(frozen).toBeGreaterThanOrEqual(0);
  const server = cluster.servers[frozen]!;
  const started = Date.now();
  server.child().kill("SIGSTOP");
  try {
    // Writes do not wait for NATS.
    const order = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FRZ-1", quantity: 1 }] } });
    expect(order.status).toBe(200);
    const read = await waitFor(
      async () => {
        const r = await system.api("GET", `/v1/orders/${order.body.id}?minVersion=${order.body.version}`, { headers: { "x-request-timeout": "3000" } });
        return r.status === 200 ? r : undefined;
      },
      "the order's events in the read model while a server hangs",
      60_000,
      100,
    );
    const tookMs = Date.now() - started;
    console.log(`read model caught up ${tookMs} ms after nats-${frozen + 1} hung`);
    expect(read.body.id).toBe(order.body.id);
    // Before: ~50 s (pings every 10 s, and a reconnect landing on the hung server waited 20 s for its handshake).
    expect(tookMs).toBeLessThan(25_000);
  } finally {
    server.child().kill("SIGCONT");
  }
}, 120_000);

test("a connection whose reconnect handshakes with a hung nats-server timed out is not dropped once the server resumes (nats.js let each abandoned handshake finish late, and its end took the live connection down)", async () => {
  using dir = tempDir("orderly-frozen-handshake-");
  const configFile = join(dir.path, "nats.conf");
  // With users, as Orderly runs it: the server closes a connection that sends no CONNECT within its 2 s auth timeout.
  writeFileSync(configFile, `authorization { users: [ { user: "probe", password: "probe-secret" } ] }\n`);
  await using nats = await startNats({ configFile, operator: { user: "probe", pass: "probe-secret" } });
  const nc = await connectNats(nats.url, "frozen-handshake-test", silentLogger(), { user: "probe", pass: "probe-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const states: string[] = [];
  void (async () => {
    for await (const status of nc.status()) states.push(status.type);
  })();
  const attempts = () => states.filter((s) => s === "reconnecting").length;
  // A socket of the test's own, opened once handshakes were given up: the server, resumed, closes it after its
  // auth timeout, after those it had accepted before it.
  let marker: Socket | undefined;
  nats.child().kill("SIGSTOP");
  try {
    // The pings find the server gone; each attempt to reconnect waits 3 s for a handshake, then is given up.
    await waitFor(() => attempts() >= 3, "two reconnect handshakes given up while the server hangs", 30_000);
    marker = createConnection({ host: "127.0.0.1", port: nats.port }).resume();
  } finally {
    nats.child().kill("SIGCONT");
  }
  await using _marker = { [Symbol.asyncDispose]: async () => void marker?.destroy() };
  const markerClosed = once(marker!, "close");
  await waitFor(() => states.includes("reconnect"), "the connection back once the server resumes", 20_000);
  const reconnected = states.lastIndexOf("reconnect");
  await markerClosed;
  // Whatever the abandoned handshakes did is now reported (a flush is answered after every byte before it).
  await nc.flush().catch(() => undefined);
  expect(states.slice(reconnected + 1).filter((s) => s === "disconnect" || s === "reconnect")).toEqual([]);
  expect(nc.isClosed()).toBe(false);
}, 60_000);
