import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as connectNats, type NatsConnection } from "nats";
import { describe, expect, test } from "vitest";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { callUnary, channelSecurity, ServingStatus, tlsChannel, type ChannelSecurity } from "../../shared/grpc/index.js";
import { natsInboxPrefix } from "../../shared/events/nats-connection.js";
import { Code, OrderlyError } from "../../shared/errors/index.js";
import { writeDevCertificates } from "../../scripts/dev-security.js";
import { streamCounts } from "../helpers/models.js";
import { waitFor } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

/** The outcome of a health check over a channel with the given credentials: the serving status, or the error's code. */
async function healthOver(address: string, security: ChannelSecurity): Promise<string> {
  const client = new grpc.Client(address, security.credentials, security.options);
  try {
    const response = await callUnary(client, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 });
    return ServingStatus[response.status];
  } catch (error) {
    return Code[(error as OrderlyError).code];
  } finally {
    client.close();
  }
}

describe("mTLS between the gateway and the services (ORDERLY_MTLS=1 in the local run)", () => {
  test("the system works over mTLS; a client without a certificate, with one from another CA, or in plaintext cannot call a service", async () => {
    await using system = await startSystem({}, { mtls: true });
    // Through the gateway: gateway → order → inventory, and gateway → query, all over mTLS.
    await system.api("POST", "/v1/inventory/TLS-1:restock", { body: { quantity: 5, name: "TLS widget", unitPriceMinor: "100", currencyCode: "USD" } });
    const order = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "TLS-1", quantity: 2 }] }, as: "alice" });
    expect(order.status).toBe(200);
    expect(order.body.status).toBe("ORDER_STATUS_CONFIRMED");
    expect((await system.api("GET", `/v1/orders/${order.body.id}?minVersion=${order.body.version}`, { as: "alice" })).status).toBe(200);

    const tls = join(system.dataDir, "secrets", "tls");
    const ca = readFileSync(join(tls, "ca.crt"));
    const address = `127.0.0.1:${system.inventory.port}`;
    using temp = tempDir("orderly-other-ca-");
    const otherDir = temp.path;
    const intruder = writeDevCertificates(otherDir, ["intruder"], "Another CA")["intruder"]!;
    // With a certificate of our CA (the gateway's), the call goes through.
    expect(await healthOver(address, tlsChannel(address, ca, readFileSync(join(tls, "gateway.key")), readFileSync(join(tls, "gateway.crt"))))).toBe("SERVING");
    // Without a client certificate, with one from another CA, or without TLS at all: refused.
    expect(await healthOver(address, tlsChannel(address, ca))).toBe("UNAVAILABLE");
    expect(await healthOver(address, tlsChannel(address, ca, readFileSync(intruder.keyFile), readFileSync(intruder.certFile)))).toBe("UNAVAILABLE");
    expect(await healthOver(address, channelSecurity(address, undefined))).toBe("UNAVAILABLE");
  });
});

describe("NATS users with per-service permissions", () => {
  test("a service cannot publish another service's events nor change another's stream, the gateway cannot publish at all, and anonymous connections are refused", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/NATS-1:restock", { body: { quantity: 5, name: "NATS widget", unitPriceMinor: "100", currencyCode: "USD" } });
    const before = await waitFor(async () => {
      const counts = await streamCounts(system.nats);
      return counts.INVENTORY >= 1 ? counts : undefined;
    }, "the restock event in the INVENTORY stream");

    const password = (user: string) => readFileSync(join(system.dataDir, "secrets", `nats-${user}.password`), "utf8").trim();
    const attempts: [user: string, subject: string][] = [
      ["order", "orderly.inventory.restocked"],
      ["inventory", "orderly.orders.created"],
      ["query", "orderly.orders.created"],
      ["gateway", "orderly.inventory.restocked"],
    ];
    /** What `act` gets done, connected to NATS as `user` (with its own inbox prefix). */
    const asUser = async <T>(user: string, act: (nc: NatsConnection) => Promise<T>): Promise<T> => {
      const nc = await connectNats({ ...system.nats.connectOptions, user, pass: password(user), inboxPrefix: natsInboxPrefix(user) });
      try {
        return await act(nc);
      } finally {
        await nc.close();
      }
    };
    const messageOf = (error: Error) => error.message;
    for (const [user, subject] of attempts) {
      const published = await asUser(user, (nc) => nc.jetstream().publish(subject, new TextEncoder().encode("forged"), { timeout: 2000 }).then(() => "stored", messageOf));
      expect({ user, subject, published }).toEqual({ user, subject, published: `'Permissions Violation for Publish to "${subject}"'` });
    }
    expect(await streamCounts(system.nats)).toEqual(before);

    // Nor can one pull from, ack or delete another's consumer, or listen to another's inbox (where its pulled messages arrive).
    const query = await connectNats({ ...system.nats.connectOptions, user: "query", pass: password("query"), inboxPrefix: natsInboxPrefix("query") });
    try {
      const refusals: string[] = [];
      query.subscribe("_INBOX.>", { callback: (error) => error && refusals.push(error.message) });
      query.subscribe("_INBOX_inventory.>", { callback: (error) => error && refusals.push(error.message) });
      const pulled = await query
        .request("$JS.API.CONSUMER.MSG.NEXT.ORDERS.inventory-order-events", new TextEncoder().encode('{"batch":1,"expires":500000000}'), { timeout: 2000 })
        .then(
          () => "answered",
          (error: Error) => error.message,
        );
      const deleted = await (await query.jetstreamManager({ checkAPI: false })).consumers.delete("ORDERS", "inventory-order-events").then(
        () => "deleted",
        (error: Error) => error.message,
      );
      await waitFor(() => refusals.length === 2, "both inbox subscriptions to be refused");
      expect({ pulled, deleted, refusals }).toEqual({
        pulled: expect.stringMatching(/permissions violation|timeout/i),
        deleted: expect.stringMatching(/permissions violation|timeout/i),
        refusals: [expect.stringMatching(/permissions violation/i), expect.stringMatching(/permissions violation/i)],
      });
    } finally {
      await query.close();
    }

    // Nor can a service change a stream it does not publish to (an update lowering its limit deletes its events, as a
    // purge would), and the query service none: each updates its own stream only (any may make a missing one).
    const updates: [user: string, stream: string][] = [
      ["query", "ORDERS"],
      ["query", "INVENTORY"],
      ["order", "INVENTORY"],
      ["inventory", "ORDERS"],
    ];
    for (const [user, stream] of updates) {
      const updated = await asUser(user, async (nc) => {
        const jsm = await nc.jetstreamManager({ checkAPI: false });
        const { config } = await jsm.streams.info(stream);
        return jsm.streams.update(stream, { ...config, max_msgs: 1 }).then(() => "updated", messageOf);
      });
      expect({ user, stream, updated }).toEqual({ user, stream, updated: expect.stringMatching(/permissions violation|timeout/i) });
    }
    expect(await streamCounts(system.nats)).toEqual(before);

    const anonymous = await connectNats({ servers: system.nats.url, maxReconnectAttempts: 0 }).then(
      async (nc) => {
        await nc.close();
        return "connected";
      },
      (error: Error) => error.message,
    );
    expect(anonymous).toMatch(/authorization/i);
  });
});
