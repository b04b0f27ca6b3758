import { expect, test, vi } from "vitest";
import { DiscardPolicy, RetentionPolicy, StorageType } from "nats";
import { startNats, startNatsCluster } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { silentLogger } from "../logging/index.js";
import { connectNats } from "./nats-connection.js";
import { defaultStreamSettings, ensureDurableConsumer, ensureStreams, STREAM_REMAKE_WAIT_MS } from "./stream-setup.js";
import { streams } from "./subjects.js";

test("a full stream keeps its first event under a burst of events of every size, and refuses every event after the first it refused", async () => {
  // With a size limit, nats-server 2.9 lets an event in that its own check under-counts, then deletes
  // the stream's oldest events to fit it (here in 16 of 40 bursts sent one at a time, and in 6 of 20
  // sent 64 at a time); its count check is exact.
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "stream-setup-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 200 });
  const js = nc.jetstream();
  let seed = 7;
  const size = () => 100 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 400);
  const results: boolean[] = [];
  for (let round = 0; round < 8; round++) {
    const batch = Array.from({ length: 64 }, (_, i) =>
      js.publish("orderly.orders.created", new Uint8Array(size()), { msgID: `e-${round}-${i}` }).then(() => true, () => false),
    );
    results.push(...(await Promise.all(batch)));
  }
  expect(results.indexOf(false)).toBe(200);
  expect(results.lastIndexOf(true)).toBe(199);
  expect((await jsm.streams.info(streams.orders.name)).state).toMatchObject({ first_seq: 1, last_seq: 200, messages: 200 });
});

test("a stream from before the event limit (a size limit, no count) gets room for the limit's events beyond those it holds, and no size limit", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "stream-setup-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  const legacy = (maxBytes: number) => ({
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New,
    max_bytes: maxBytes,
    num_replicas: 1,
  });
  await jsm.streams.add({ name: streams.orders.name, subjects: [...streams.orders.subjects], ...legacy(1024 * 1024) });
  await jsm.streams.add({ name: streams.inventory.name, subjects: [...streams.inventory.subjects], ...legacy(-1) });
  const js = nc.jetstream();
  for (let i = 0; i < 50; i++) await js.publish("orderly.orders.created", new Uint8Array(10), { msgID: `old-${i}` });

  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 20 });
  const orders = await jsm.streams.info(streams.orders.name);
  expect({ maxMsgs: orders.config.max_msgs, maxBytes: orders.config.max_bytes, first: orders.state.first_seq, messages: orders.state.messages }).toEqual({
    maxMsgs: 70,
    maxBytes: -1,
    first: 1,
    messages: 50,
  });
  // A stream with no limit at all (set so by hand) stays unlimited.
  expect((await jsm.streams.info(streams.inventory.name)).config).toMatchObject({ max_msgs: -1, max_bytes: -1 });

  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 1000 });
  expect((await jsm.streams.info(streams.orders.name)).config.max_msgs).toBe(1000);

  // A process with a smaller limit, or the same, writes nothing: it cannot put back a limit it read before another raised it.
  const updates = vi.spyOn(jsm.streams, "update");
  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 20 });
  await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 1000 });
  expect(updates).not.toHaveBeenCalled();
  expect((await jsm.streams.info(streams.orders.name)).config.max_msgs).toBe(1000);
});

test("on a cluster, STREAM_REPLICAS gives every stream its copies, also a stream made with fewer; a process with fewer leaves them, and a single server refuses more than one", async () => {
  await using cluster = await startNatsCluster(3);
  const nc = await connectNats(cluster.url, "stream-setup-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  const copies = async () => Promise.all(Object.values(streams).map(async ({ name }) => (await jsm.streams.info(name)).config.num_replicas));
  // Made with one copy (by a version before STREAM_REPLICAS), with a durable consumer, then given three.
  await ensureStreams(jsm);
  await ensureDurableConsumer(jsm, streams.orders.name, "setup-test", "orderly.orders.>");
  expect(await copies()).toEqual([1, 1]);
  await ensureStreams(jsm, { ...defaultStreamSettings, replicas: 3 });
  expect(await copies()).toEqual([3, 3]);
  // The durable consumer follows its stream onto the other servers.
  await waitFor(async () => (await jsm.consumers.info(streams.orders.name, "setup-test")).cluster?.replicas?.length === 2, "the consumer's two more copies");
  // A process started without the setting takes none away (lowering it on purpose is the nats CLI's).
  await ensureStreams(jsm);
  expect(await copies()).toEqual([3, 3]);

  await using single = await startNats();
  const lone = await connectNats(single.url, "stream-setup-test", silentLogger());
  await using _lone = { [Symbol.asyncDispose]: () => lone.close() };
  await expect(ensureStreams(await lone.jetstreamManager(), { ...defaultStreamSettings, replicas: 3 })).rejects.toThrow(/replicas > 1 not supported in non-clustered mode/);
});

test("a process makes any stream missing but changes only the one it publishes to: a reader's limits never reach another's stream", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "stream-setup-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  const limits = async () => Promise.all(["ORDERS", "INVENTORY"].map(async (name) => (await jsm.streams.info(name)).config.max_msgs));
  // The query service (a reader of both) first: it makes both, at its settings.
  expect(await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 1000 }, 0, [])).toEqual(["ORDERS", "INVENTORY"]);
  expect(await limits()).toEqual([1000, 1000]);
  // The inventory service raises its own stream only; a reader with a higher limit changes neither.
  expect(await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 5000 }, 0, ["inventory"])).toEqual([]);
  expect(await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 9000 }, 0, [])).toEqual([]);
  expect(await limits()).toEqual([1000, 5000]);
  expect(await ensureStreams(jsm, { ...defaultStreamSettings, maxEvents: 2000 }, 0, ["orders"])).toEqual([]);
  expect(await limits()).toEqual([2000, 5000]);
});

test("ensureDurableConsumer tells whether it had to create the consumer: once, and again after it was deleted", async () => {
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "stream-setup-test", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const jsm = await nc.jetstreamManager();
  await ensureStreams(jsm);
  const ensure = (ackWaitMs?: number) => ensureDurableConsumer(jsm, streams.orders.name, "setup-test", "orderly.orders.>", ackWaitMs);
  const updates = vi.spyOn(jsm.consumers, "update");
  expect([await ensure(), await ensure()]).toEqual([true, false]);
  // Nothing written when nothing changes (it runs again whenever events stop flowing); a new ack wait is.
  expect(updates).not.toHaveBeenCalled();
  await ensure(7000);
  expect(updates).toHaveBeenCalledTimes(1);
  expect((await jsm.consumers.info(streams.orders.name, "setup-test")).config.ack_wait).toBe(7000 * 1_000_000);
  await jsm.consumers.delete(streams.orders.name, "setup-test");
  expect(await ensure()).toBe(true);
});

test("a stream deleted under a waiting consumer and made again when it is told, as a running process makes it, keeps and delivers the events published to it", async () => {
  // Made again at once, nats-server 2.9.10 removed the new stream's files as it finished deleting the old
  // one: it acked the event, and no read or consumer ever got it (96 of 100 tries).
  await using nats = await startNats();
  const nc = await connectNats(nats.url, "stream-setup-test", silentLogger());
  const admin = await connectNats(nats.url, "stream-setup-admin", silentLogger());
  await using _nc = { [Symbol.asyncDispose]: async () => void (await Promise.all([nc.close(), admin.close()])) };
  const [jsm, adminJsm, js] = [await nc.jetstreamManager(), await admin.jetstreamManager(), nc.jetstream()];
  await ensureStreams(jsm);
  for (let round = 0; round < 3; round++) {
    await ensureDurableConsumer(jsm, streams.orders.name, "remake-test", "orderly.orders.>");
    const messages = await (await js.consumers.get(streams.orders.name, "remake-test")).consume({ expires: 5000, abort_on_missing_resource: true });
    const told = (async () => {
      try {
        for await (const msg of messages) msg.ack();
      } catch (error) {
        return String(error);
      }
      return "ended";
    })();
    await waitFor(async () => (await jsm.consumers.info(streams.orders.name, "remake-test")).num_waiting > 0, "the consumer's pull waiting", 5000);
    const deleting = adminJsm.streams.delete(streams.orders.name);
    expect(await told).toMatch(/consumer deleted/);
    expect(await ensureStreams(jsm, defaultStreamSettings, STREAM_REMAKE_WAIT_MS)).toEqual([streams.orders.name]);
    await js.publish("orderly.orders.created", new Uint8Array(10), { msgID: `remade-${round}` });
    await deleting;
    expect((await jsm.streams.getMessage(streams.orders.name, { seq: 1 })).subject).toBe("orderly.orders.created");
  }
});
