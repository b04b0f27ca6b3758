import { connect } from "nats";
import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";

test("a durable consumer pulls again at once when JetStream moves its leader (the pull at the old leader is dropped): an order created after a leader stepdown reaches the read model within 3 s (~5 s before, two missed heartbeats)", async () => {
  await using system = await startSystem({ STREAM_REPLICAS: "3" }, { natsCluster: 3 });
  await system.api("POST", "/v1/inventory/LDR-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  const before = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "LDR-1", quantity: 1 }] } });
  // A cluster just started may still be electing its streams' and consumers' leaders: the first order's events can take
  // longer than the default 5 s budget to reach the read model (once in CI, under load), so this read may wait up to 30 s.
  // What the test measures is the read after the stepdown, below.
  const first = await system.api("GET", `/v1/orders/${before.body.id}?minVersion=${before.body.version}`, { headers: { "x-request-timeout": "30000" } });
  expect(first.status).toBe(200);
  const nc = await connect(system.natsCluster!.connectOptions);
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  const leaderOf = async () => (await jsm.consumers.info("ORDERS", "query-orders").catch(() => undefined))?.cluster?.leader;
  // Once its pull is waiting at the leader, as it is between events.
  await waitFor(async () => (await jsm.consumers.info("ORDERS", "query-orders")).num_waiting > 0, "the query consumer's pull waiting at its leader");
  const old = await leaderOf();
  await nc.request("$JS.API.CONSUMER.LEADER.STEPDOWN.ORDERS.query-orders", undefined, { timeout: 5000 });
  await waitFor(async () => ((await leaderOf()) ?? old) !== old, "another server leading the query consumer", 20_000);
  const order = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "LDR-1", quantity: 1 }] } });
  expect(order.status).toBe(200);
  // A read waits for the version it asks for up to its deadline: 3 s, well under the ~5 s a dropped pull waited before.
  const read = await system.api("GET", `/v1/orders/${order.body.id}?minVersion=${order.body.version}`, { headers: { "x-request-timeout": "3000" } });
  expect(read.status).toBe(200);
}, 90_000);
