import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "nats";
import { expect, test } from "vitest";
import { EventSchema } from "../proto/gen/orderly/events/v1/events_pb.js";
import { silentLogger } from "../shared/logging/index.js";
import { startNats } from "../test/helpers/nats.js";
import { waitFor } from "../test/helpers/processes.js";
import { aggregateOf, invalidateOnEvents } from "./cache-invalidation.js";
import { ReadCache } from "./read-cache.js";
import { tempDir } from "../test/helpers/temp-dir.js";

test("reads an event's aggregate id and version from its wire form, whatever else it carries", () => {
  const event = create(EventSchema, {
    eventId: "e-1",
    aggregateId: "ord_1",
    aggregateVersion: 7n,
    occurTime: timestampFromMs(1_700_000_000_000),
    requestId: "r-1",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    payload: { case: "orderCancelled", value: { order: { id: "ord_1", customerId: "alice", items: [{ sku: "A", quantity: 2 }] } } },
  });
  expect(aggregateOf(toBinary(EventSchema, event))).toEqual({ aggregateId: "ord_1", aggregateVersion: 7 });
  expect(aggregateOf(toBinary(EventSchema, create(EventSchema, {})))).toEqual({ aggregateId: "", aggregateVersion: 0 });
  expect(() => aggregateOf(new Uint8Array([0x12, 0x05, 0x61]))).toThrow();
});

test("cut off from its events, the cache keeps entries at most a second: before the subscription is in place, while NATS is down; back, it starts empty", async () => {
  await using nats = await startNats();
  const cache = new ReadCache(60_000);
  const invalidation = invalidateOnEvents(cache, nats.url, silentLogger());
  await using _invalidation = { [Symbol.asyncDispose]: () => invalidation.close() };
  const key = "GetOrder|ord_1|*";
  /** Caches a read of ord_1 at `version` (when the cache takes it). */
  const cache1 = (version: number) => cache.set(key, "ord_1", `{"id":"ord_1","version":"${version}"}`, version, cache.generation());
  expect(cache.isLive).toBe(false);
  await waitFor(() => cache.isLive, "subscribed");
  cache1(1);
  expect(cache.get(key, 0)?.body).toBeDefined();

  // An event of the order drops it.
  const nc = await connect(nats.connectOptions);
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  nc.publish("orderly.orders.cancelled", toBinary(EventSchema, create(EventSchema, { aggregateId: "ord_1", aggregateVersion: 2n })));
  await waitFor(() => cache.get(key, 0)?.body === undefined, "the event's invalidation");
  cache1(2);

  // NATS gone: the entry cached for a minute is gone within about a second (the bound is loose for a loaded machine).
  await nats.kill("SIGKILL");
  const killed = Date.now();
  await waitFor(() => !cache.isLive, "suspended");
  await waitFor(() => cache.get(key, 0)?.body === undefined, "the entry expired", 15_000, 20);
  expect(Date.now() - killed).toBeLessThan(10_000);

  // Back (the gateway's connection keeps reconnecting), subscribed again: from empty, and invalidations are heard again.
  cache1(2);
  await nats.restart();
  await waitFor(() => cache.isLive, "resumed", 20_000);
  expect(cache.stats.entries).toBe(0);
  cache1(2);
  await waitFor(async () => {
    nc.publish("orderly.orders.cancelled", toBinary(EventSchema, create(EventSchema, { aggregateId: "ord_1", aggregateVersion: 3n })));
    await nc.flush();
    return cache.get(key, 0)?.body === undefined;
  }, "invalidations heard again");
});

test("a subscription the server refuses leaves the cache cut off: entries keep living at most a second", async () => {
  // A user that may not subscribe to the events.
  using temp = tempDir("orderly-nats-conf-");
  const dir = temp.path;
  const configFile = join(dir, "nats.conf");
  writeFileSync(configFile, `authorization { users: [ { user: "gw", password: "pw", permissions: { subscribe: { allow: ["_INBOX.>"] } } } ] }\n`);
  await using nats = await startNats({ configFile });
  const cache = new ReadCache(60_000);
  const warnings: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_fields: unknown, message: string) => void warnings.push(message)) as typeof logger.warn;
  const invalidation = invalidateOnEvents(cache, nats.url, logger, { user: "gw", pass: "pw" });
  await using _invalidation = { [Symbol.asyncDispose]: () => invalidation.close() };
  await waitFor(() => warnings.some((m) => m.startsWith("cache invalidation stopped")), "the refusal logged");
  expect(cache.isLive).toBe(false);
});
