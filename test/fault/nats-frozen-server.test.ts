import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";

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
