import { connect } from "nats";
import { expect, test } from "vitest";
import type { NatsCluster } from "../helpers/nats.js";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";
import { orderBurst, stockUp, waitForAllApplied, waitForConvergence } from "./events-helpers.js";

/** Where a cluster keeps each of Orderly's streams: the server leading it and the servers holding a copy. */
async function placement(cluster: NatsCluster): Promise<Record<"ORDERS" | "INVENTORY", { leader: string; copies: string[] }>> {
  const nc = await connect(cluster.connectOptions);
  try {
    const jsm = await nc.jetstreamManager();
    const of = async (name: string) => {
      const { cluster: where, config } = await jsm.streams.info(name);
      return { leader: where?.leader ?? "", copies: [where?.leader ?? "", ...(where?.replicas ?? []).map((r) => r.name)].sort(), replicas: config.num_replicas };
    };
    const [orders, inventory] = await Promise.all([of("ORDERS"), of("INVENTORY")]);
    expect([orders.replicas, inventory.replicas]).toEqual([3, 3]);
    return { ORDERS: orders, INVENTORY: inventory };
  } finally {
    await nc.close();
  }
}

test("with STREAM_REPLICAS=3 on a three-server JetStream cluster, each stream is kept on every server, and losing the server that leads the orders stream loses no event: orders placed before, while and after it is down all reach the read models, each event applied once", async () => {
  await using system = await startSystem({ STREAM_REPLICAS: "3" }, { natsCluster: 3 });
  const cluster = system.natsCluster!;
  // Read again until JetStream answers (a request can time out while the servers elect a leader).
  const before = await waitFor(async () => {
    const now = await placement(cluster);
    return now.ORDERS.leader !== "" && now.INVENTORY.leader !== "" ? now : undefined;
  }, "the streams made with their leaders");
  expect(before.ORDERS.copies).toEqual(["nats-1", "nats-2", "nats-3"]);
  expect(before.INVENTORY.copies).toEqual(["nats-1", "nats-2", "nats-3"]);
  await stockUp(system);
  expect((await orderBurst(system, 40, 1)).filter((status) => status !== 200)).toEqual([]);
  await waitForConvergence(system);

  // The server leading the orders stream dies (its clients reconnect to the others, which choose a new leader).
  const leader = cluster.servers[Number(before.ORDERS.leader.replace("nats-", "")) - 1]!;
  await leader.kill();
  expect((await orderBurst(system, 40, 2)).filter((status) => status !== 200)).toEqual([]);
  await waitForConvergence(system);
  // Another server leads the stream now (asked again while the survivors may still be electing their metadata leader).
  await waitFor(async () => {
    const { leader } = (await placement(cluster)).ORDERS;
    return leader !== "" && leader !== before.ORDERS.leader;
  }, "another server leading the orders stream", 30_000);

  // Back with its store, it catches up, and the events go on.
  await leader.restart();
  expect((await orderBurst(system, 40, 3)).filter((status) => status !== 200)).toEqual([]);
  const models = await waitForConvergence(system);
  expect(models.write.orders).toHaveLength(120);
  // Exactly once: the read models applied as many events as the streams hold, no more.
  const applied = await waitForAllApplied(system);
  expect(applied.processed).toBe(applied.inStreams);
});
