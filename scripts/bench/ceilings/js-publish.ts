/**
 * Ceiling 3: JetStream publishing with many PubAcks outstanding, against a
 * real nats-server -js. Creates a file-backed stream configured like
 * Orderly's (limits retention, 10-minute duplicate window), publishes
 * `--count` messages of `--bytes` bytes, each with a fresh Nats-Msg-Id and a
 * traceparent header (what the relay sends), and prints one JSON line
 * {"mode","count","ms","msgsPerSec","cpuMsPerMsg"}. It publishes the way the
 * relay does, with shared/events' JetStreamPublisher (a core publish with a
 * reply subject per message, PubAcks on one subscription): nats.js's own
 * js.publish reached well under half of that rate here, so it would not be
 * a ceiling.
 *
 *   --mode window   keeps --window publishes in flight at all times (the ceiling)
 *   --mode batch    publishes --window at a time and waits for all their acks
 *                   before the next batch (the relay's pattern, without SQLite)
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { DiscardPolicy, RetentionPolicy, StorageType, connect } from "nats";
import { JetStreamPublisher } from "../../../shared/events/jetstream-publisher.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    count: { type: "string", default: "20000" },
    window: { type: "string", default: "256" },
    bytes: { type: "string", default: "400" },
    mode: { type: "string", default: "window" },
  },
});
const count = Number(values.count);
const window = Number(values.window);
const payload = new Uint8Array(Number(values.bytes)).fill(120);
const mode = values.mode;
if (!values.url || !(count > 0) || !(window > 0) || (mode !== "window" && mode !== "batch")) {
  throw new Error("usage: js-publish.ts --url nats://… [--count N] [--window W] [--bytes B] [--mode window|batch]");
}

// The same connection options as Orderly's relay (no stack captured per request), so the ceiling stays a ceiling.
const nc = await connect({ servers: values.url, noAsyncTraces: true });
try {
  const jsm = await nc.jetstreamManager();
  const name = `BENCH_${randomUUID().slice(0, 8)}`;
  const subject = `bench.${name}.event`;
  await jsm.streams.add({
    name,
    subjects: [`bench.${name}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: 10 * 60 * 1_000_000_000,
    num_replicas: 1,
  });
  const publisher = new JetStreamPublisher(nc, 10_000);
  const headers = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
  const publish = () => publisher.publish({ subject, payload, msgID: randomUUID(), headers });
  // Warm up the connection and the stream's files.
  await Promise.all(Array.from({ length: Math.min(window, 256) }, publish));
  const started = performance.now();
  const cpu = process.cpuUsage();
  if (mode === "batch") {
    for (let sent = 0; sent < count; sent += window) {
      await Promise.all(Array.from({ length: Math.min(window, count - sent) }, publish));
    }
  } else {
    let sent = 0;
    const lane = async () => {
      while (sent < count) {
        sent++;
        await publish();
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
  }
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ mode, count, ms: Math.round(ms), msgsPerSec: count / (ms / 1000), cpuMsPerMsg: (used.user + used.system) / 1000 / count }));
  publisher.close();
  await jsm.streams.delete(name);
} finally {
  await nc.close();
}
