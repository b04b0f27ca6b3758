import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { connectWithStreams, startNats, startNatsDenyingInbox } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { silentLogger } from "../logging/index.js";
import { JetStreamPublisher } from "./jetstream-publisher.js";
import { connectNats } from "./nats-connection.js";
import { streams } from "./subjects.js";

test("the publisher stores messages in order with their headers, reports duplicates, and fails fast or at its deadline", async () => {
  await using nats = await startNats();
  await using client = await connectWithStreams(nats);
  const { nc, jsm } = client;
  const publisher = new JetStreamPublisher(nc, 300);
  using _publisher = { [Symbol.dispose]: () => publisher.close() };
  const payload = (i: number) => new TextEncoder().encode(`event ${i}`);

  // 500 in flight at once: every one acked, stored in the order published.
  const acks = await Promise.all(
    Array.from({ length: 500 }, (_, i) => publisher.publish({ subject: "orderly.orders.created", payload: payload(i), msgID: `id-${i}`, headers: { traceparent: `tp-${i}` } })),
  );
  expect(acks.map((a) => [a.stream, a.seq, a.duplicate])).toEqual(Array.from({ length: 500 }, (_, i) => [streams.orders.name, i + 1, false]));
  const stored = await jsm.streams.getMessage(streams.orders.name, { seq: 321 });
  expect([new TextDecoder().decode(stored.data), stored.header.get("Nats-Msg-Id"), stored.header.get("traceparent")]).toEqual(["event 320", "id-320", "tp-320"]);

  // The same Nats-Msg-Id again: JetStream keeps the first and says so.
  const again = await publisher.publish({ subject: "orderly.orders.created", payload: payload(7), msgID: "id-7" });
  expect([again.seq, again.duplicate]).toEqual([8, true]);
  expect((await jsm.streams.info(streams.orders.name)).state.messages).toBe(500);

  // No stream takes the subject: refused by JetStream's answer, not at the deadline.
  await expect(publisher.publish({ subject: "nowhere.at.all", payload: payload(0), msgID: "x" })).rejects.toThrow(/^JetStream answered 503/);

  // A server that stops answering: each publish fails at its deadline.
  nats.child().kill("SIGSTOP");
  // The stop takes effect when the kernel gets to every thread: publish once the process is stopped (state T).
  await waitFor(() => readFileSync(`/proc/${nats.child().pid}/stat`, "utf8").split(") ")[1]?.startsWith("T"), "nats-server stopped");
  try {
    await expect(publisher.publish({ subject: "orderly.orders.created", payload: payload(0), msgID: "stalled" })).rejects.toThrow(/no PubAck within 300 ms/);
  } finally {
    nats.child().kill("SIGCONT");
  }

  // Once closed, it refuses at once instead of publishing what it could never confirm.
  publisher.close();
  await expect(publisher.publish({ subject: "orderly.orders.created", payload: payload(0), msgID: "late" })).rejects.toThrow(/closed/);
});

test("a PubAck subscription the server refused (the user not allowed its inbox) is made again once the permission is granted by a reload: publishing works again without a restart", async () => {
  using dir = tempDir("orderly-publisher-");
  await using nats = await startNatsDenyingInbox(dir.path, "order", "order-secret");
  await using operator = await connectWithStreams(nats);
  const { jsm } = operator;
  const nc = await connectNats(nats.url, "publisher-test", silentLogger(), { user: "order", pass: "order-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const publisher = new JetStreamPublisher(nc, 2000);
  using _publisher = { [Symbol.dispose]: () => publisher.close() };
  const publish = (i: number) => publisher.publish({ subject: "orderly.orders.created", payload: new TextEncoder().encode(`event ${i}`), msgID: `id-${i}` });

  await expect(publish(1)).rejects.toThrow(/PubAck subscription failed/);
  // While it is refused, publishes are refused too, also the one that subscribes again, which sends nothing: the
  // stream holds only the first (stored, its PubAck lost), whatever its duplicate window.
  let next = 100;
  await waitFor(() => publish(next++).then(() => false, (error: Error) => /being made again/.test(error.message)), "a publish that subscribes again", 10_000, 100);
  await waitFor(() => publish(next++).then(() => false, (error: Error) => /PubAck subscription failed/.test(error.message)), "the subscription refused again", 5_000, 20);
  expect((await jsm.streams.info(streams.orders.name)).state.messages).toBe(1);
  // The operator allows the user its inbox and reloads the server: the connection stays up.
  nats.allowInbox();
  const ack = await waitFor(() => publish(2).catch(() => undefined), "a publish acked after the reload", 20_000, 200);
  // The first was stored, its PubAck lost with the subscription: sent again (as the relay does), it is a duplicate.
  const again = await publish(1);
  expect([ack.stream, ack.seq, again.seq, again.duplicate]).toEqual([streams.orders.name, 2, 1, true]);
});
