import { join } from "node:path";
import { connect, type JetStreamManager } from "nats";
import { describe, expect, test } from "vitest";
import { runRebuild, waitFor } from "../helpers/processes.js";
import { startSystem, type System } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

/** Places an order for one unit of `sku` and reads it back from the read model (waiting up to 30 s for it). */
async function orderReadBack(system: System, sku: string): Promise<{ status: number; order: unknown }> {
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "gil", items: [{ sku, quantity: 1 }] } });
  expect(created.status).toBe(200);
  const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { headers: { "x-request-timeout": "30000" } });
  return { status: read.status, order: read.body.status };
}

/** The lines the order, query and inventory services logged. */
function serviceLogs(system: System): string[] {
  return [system.order.logs, system.query.logs, system.inventory.logs].flat();
}

/** What the services warned of, for a failure's message: how they found the damage and what they made again. */
function warnings(system: System): string {
  const lines = serviceLogs(system).filter((line) => /"level":(40|50)/.test(line));
  return `the services' warnings:\n${lines.slice(-40).join("\n")}`;
}

/** Does to JetStream, as its admin, what `damage` does. */
async function asAdmin(system: System, damage: (jsm: JetStreamManager) => Promise<void>): Promise<void> {
  const nc = await connect(system.nats.connectOptions);
  try {
    await damage(await nc.jetstreamManager());
  } finally {
    await nc.close();
  }
}

/** What an operator (or an accident) does to the streams under a running system. */
describe("streams and durable consumers deleted under running services", () => {
  test("every durable consumer deleted: each service makes its own again, and new orders reach the read models", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/GONE-1:restock", { body: { quantity: 10 } });
    expect(await orderReadBack(system, "GONE-1")).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });

    await asAdmin(system, async (jsm) => {
      for (const stream of ["ORDERS", "INVENTORY"]) for await (const info of jsm.consumers.list(stream)) await jsm.consumers.delete(stream, info.name);
    });

    expect(await orderReadBack(system, "GONE-1"), warnings(system)).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });
    // The stock projection (from the inventory's stream) has both orders too.
    await waitFor(async () => (await system.api("GET", "/v1/stock/GONE-1")).body.reserved === 2, "the projected stock of both orders", 30_000, 100);
    expect(system.query.logs.some((line) => line.includes("made them again") && line.includes("query-orders"))).toBe(true);
  });

  test("the ORDERS stream deleted (its consumers with it): the first service to find it gone makes it again, and new orders reach the read model", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/GONE-2:restock", { body: { quantity: 10 } });
    expect(await orderReadBack(system, "GONE-2")).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });

    await asAdmin(system, (jsm) => jsm.streams.delete("ORDERS").then(() => undefined));

    expect(await orderReadBack(system, "GONE-2"), warnings(system)).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });
    expect(serviceLogs(system).some((line) => line.includes("made them again") && line.includes("ORDERS"))).toBe(true);
  });

  test("a rebuild replays up to the last event there is, and ends: with the stream's last event deleted by hand, and with the stream purged", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/GONE-3:restock", { body: { quantity: 10 } });
    for (let i = 0; i < 3; i++) expect(await orderReadBack(system, "GONE-3")).toEqual({ status: 200, order: "ORDER_STATUS_CONFIRMED" });
    using temp = tempDir("orderly-rebuild-");
    /** The events the rebuild applied per stream (bounded: a rebuild that waits for an event that is not there fails). */
    const rebuild = async (name: string) => {
      const out = join(temp.path, name);
      const { stdout } = await runRebuild(system.env.query, ["--out", out]);
      return (JSON.parse(stdout.split("\n")[0]!) as { events: Record<string, number> }).events;
    };
    let held = 0;
    await asAdmin(system, async (jsm) => {
      const { last_seq: last, messages } = (await jsm.streams.info("ORDERS")).state;
      await jsm.streams.deleteMessage("ORDERS", last);
      held = messages - 1;
    });
    expect((await rebuild("without-the-last.db")).ORDERS).toBe(held);

    await asAdmin(system, (jsm) => jsm.streams.purge("ORDERS").then(() => undefined));
    expect((await rebuild("purged.db")).ORDERS).toBe(0);
  });

  test("a rebuild --replace that would lose what the live read model holds (the stream purged) is refused, saying how much; --allow-loss replaces it", async () => {
    await using system = await startSystem();
    await system.api("POST", "/v1/inventory/GONE-4:restock", { body: { quantity: 10 } });
    const orders = [];
    for (let i = 0; i < 3; i++) {
      const created = await system.api("POST", "/v1/orders", { body: { customerId: "gil", items: [{ sku: "GONE-4", quantity: 1 }] } });
      await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { headers: { "x-request-timeout": "30000" } });
      orders.push(created.body.id as string);
    }
    const replace = (...args: string[]) =>
      runRebuild(system.env.query, ["--replace", ...args]).then(
        ({ stdout }) => `exited 0: ${stdout}`,
        (error: { code?: number; stdout?: string; stderr?: string }) => `exited ${error.code}: ${error.stdout}${error.stderr}`,
      );
    await system.query.stop();
    // With every event still in the streams, the read model is replaced by an equal one.
    expect(await replace()).toMatch(/^exited 0: [^]*the rebuilt read models equal the live ones\nreplaced /);

    await asAdmin(system, (jsm) => jsm.streams.purge("ORDERS").then(() => undefined));
    const refused = await replace();
    expect(refused).toMatch(/^exited 1: [^]*the rebuilt read models lack 3 order\(s\) and 0 stock level\(s\) the live ones hold/);
    expect(refused).toContain("not replaced: ");
    expect(refused).toContain("To replace anyway: npm run rebuild -- --replace --allow-loss");
    // Nothing changed: the query service, started again, still answers every order.
    const query = await system.restart("query");
    for (const id of orders) expect((await system.api("GET", `/v1/orders/${id}`, { headers: { "cache-control": "no-cache" } })).status).toBe(200);
    await query.stop();
    expect(await replace("--allow-loss")).toMatch(/^exited 0: [^]*replaced /);
    await system.restart("query");
    expect((await system.api("GET", `/v1/orders/${orders[0]}`, { headers: { "cache-control": "no-cache" } })).status).toBe(404);
  });
});
