import { expect, test } from "vitest";
import { openReadOnly } from "../helpers/models.js";
import { waitFor } from "../helpers/processes.js";
import { sampleValue, scrape } from "../helpers/prometheus.js";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { connect, createClient } from "../../shared/grpc/index.js";
import { reasonOf, startSystem, type System } from "../helpers/system.js";

/** A gRPC client of the inventory service with the admin's bearer token, sent straight to it (reserving is for services and admins). */
function adminInventoryClient(system: System) {
  const connection = connect(`127.0.0.1:${system.inventory.port}`, { callMetadata: () => ({ authorization: `Bearer ${system.tokens.admin}` }) });
  return { connection, inventory: createClient(InventoryService, connection) };
}

test("with inventory down, an order is accepted as PENDING (202) and confirmed through events once inventory is back", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/DEG-1:restock", { body: { quantity: 5, unitPriceMinor: "700" } });
  await system.inventory.stop("SIGKILL");

  const started = performance.now();
  const accepted = await system.api("POST", "/v1/orders", {
    body: { customerId: "dora", items: [{ sku: "DEG-1", quantity: 2 }] },
    headers: { "idempotency-key": "deg-1", "x-request-timeout": "2000" },
  });
  expect(performance.now() - started).toBeLessThan(2100);
  expect(accepted.status).toBe(202);
  expect(accepted.body).toMatchObject({ status: "ORDER_STATUS_PENDING", version: "1" });
  const replay = await system.api("POST", "/v1/orders", {
    body: { customerId: "dora", items: [{ sku: "DEG-1", quantity: 2 }] },
    headers: { "idempotency-key": "deg-1" },
  });
  expect(replay.status).toBe(202);
  expect(replay.text).toBe(accepted.text);
  // The order service says why it accepted the order unreserved, once, in the request's line (which arrives after the answer).
  const degradedLines = () => system.order.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.orderId === accepted.body.id && String(line.msg).startsWith("inventory could not reserve the order now"));
  const degraded = await waitFor(() => (degradedLines().length > 0 ? degradedLines() : undefined), "the order service's line about the order accepted unreserved");
  expect(degraded).toEqual([expect.objectContaining({ level: 30, reason: "DEPENDENCY_UNAVAILABLE", dependency: "inventory", requestId: expect.any(String) })]);

  const tooManyRequest = { body: { customerId: "dora", items: [{ sku: "DEG-1", quantity: 9 }] }, headers: { "idempotency-key": "deg-2" } };
  const tooMany = await system.api("POST", "/v1/orders", tooManyRequest);
  expect(tooMany.status).toBe(202);

  await system.restart("inventory");
  const confirmed = await system.api("GET", `/v1/orders/${accepted.body.id}?minVersion=2`, { headers: { "x-request-timeout": "20000" } });
  expect(confirmed.body).toMatchObject({ status: "ORDER_STATUS_CONFIRMED", totalMinor: "1400" });
  const rejected = await system.api("GET", `/v1/orders/${tooMany.body.id}?minVersion=2`, { headers: { "x-request-timeout": "20000" } });
  expect(rejected.body).toMatchObject({ status: "ORDER_STATUS_REJECTED", rejectReason: "INSUFFICIENT_STOCK" });
  expect((await system.api("GET", "/v1/inventory/DEG-1")).body).toMatchObject({ available: 3, reserved: 2 });

  // The 202 was not the outcome: once decided, a retry with the same key gets the decision, and every later retry the same bytes.
  const retried = await system.api("POST", "/v1/orders", { body: { customerId: "dora", items: [{ sku: "DEG-1", quantity: 2 }] }, headers: { "idempotency-key": "deg-1" } });
  expect({ status: retried.status, body: retried.body }).toEqual({ status: 200, body: confirmed.body });
  const again = await system.api("POST", "/v1/orders", { body: { customerId: "dora", items: [{ sku: "DEG-1", quantity: 2 }] }, headers: { "idempotency-key": "deg-1" } });
  expect(again.text).toBe(retried.text);
  const refused = await system.api("POST", "/v1/orders", tooManyRequest);
  expect({ status: refused.status, reason: reasonOf(refused.body) }).toEqual({ status: 400, reason: "INSUFFICIENT_STOCK" });
  expect((await system.api("GET", "/v1/inventory/DEG-1")).body).toMatchObject({ available: 3, reserved: 2 });
});

test("an order accepted as PENDING (202) while inventory is down can be cancelled at once; once inventory is back its stock is all there, and a retry of its key gets the cancelled order", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/DEG-C:restock", { body: { quantity: 5, unitPriceMinor: "700" } });
  await system.inventory.stop("SIGKILL");
  const request = { body: { customerId: "dora", items: [{ sku: "DEG-C", quantity: 2 }] }, headers: { "idempotency-key": "deg-cancel-1", "x-request-timeout": "2000" } };
  const accepted = await system.api("POST", "/v1/orders", request);
  expect({ status: accepted.status, order: accepted.body.status }).toEqual({ status: 202, order: "ORDER_STATUS_PENDING" });
  const cancelled = await system.api("POST", `/v1/orders/${accepted.body.id}:cancel`, { headers: { "x-request-timeout": "2000" } });
  expect({ status: cancelled.status, order: cancelled.body.status }).toEqual({ status: 200, order: "ORDER_STATUS_CANCELLED" });
  // The order service says why the stock waits for the event: the reason, not a stack (one such line per cancel in an outage).
  const releaseLines = () => system.order.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => String(line.msg).startsWith("could not release a cancelled order's stock"));
  const released = await waitFor(() => (releaseLines().length > 0 ? releaseLines() : undefined), "the order service's line about the stock not released at once");
  expect(released).toEqual([expect.objectContaining({ level: 40, orderId: accepted.body.id, reason: expect.stringMatching(/^(DEPENDENCY_UNAVAILABLE|CIRCUIT_OPEN)$/) })]);
  expect(released[0]).not.toHaveProperty("err");

  await system.restart("inventory");
  // The inventory reads the order's events in their order (created, then cancelled): whatever it reserved, it gives back.
  const inventoryCaughtUp = async () => {
    const status = (await (await fetch(`http://127.0.0.1:${system.inventory.adminPort}/status.json`)).json()) as { consumers: { pending?: number; ackPending?: number }[] };
    return status.consumers.length > 0 && status.consumers.every((c) => c.pending === 0 && c.ackPending === 0);
  };
  await waitFor(inventoryCaughtUp, "the inventory to have read every event", 20_000, 100);
  expect((await system.api("GET", "/v1/inventory/DEG-C")).body).toMatchObject({ available: 5, reserved: 0 });
  const retried = await system.api("POST", "/v1/orders", request);
  expect({ status: retried.status, id: retried.body.id, order: retried.body.status }).toEqual({ status: 200, id: accepted.body.id, order: "ORDER_STATUS_CANCELLED" });
  const read = await system.api("GET", `/v1/orders/${accepted.body.id}?minVersion=${cancelled.body.version}`, { headers: { "x-request-timeout": "10000" } });
  expect(read.body.status).toBe("ORDER_STATUS_CANCELLED");
  // And it stays so: no late reservation outcome or recovery brings it back, nor holds stock. (The next order may be
  // accepted as PENDING too, while the order service's breaker for the inventory has yet to close.)
  const other = await system.api("POST", "/v1/orders", { body: { customerId: "dora", items: [{ sku: "DEG-C", quantity: 5 }] } });
  expect([200, 202]).toContain(other.status);
  const otherDecided = await system.api("GET", `/v1/orders/${other.body.id}?minVersion=2`, { headers: { "x-request-timeout": "20000" } });
  expect(otherDecided.body.status).toBe("ORDER_STATUS_CONFIRMED");
  // As the order service has it: the key's retry still gets the cancelled order.
  expect((await system.api("POST", "/v1/orders", request)).body.status).toBe("ORDER_STATUS_CANCELLED");
});

test("with INVENTORY_FALLBACK=fail-fast an unreachable inventory is a fast 503 naming the order, which a read finds and events settle once it is back; one of an unknown SKU is rejected, not lost", async () => {
  await using system = await startSystem({ INVENTORY_FALLBACK: "fail-fast", PENDING_RECOVERY_AFTER_MS: "500", PENDING_RECOVERY_INTERVAL_MS: "200" });
  await system.api("POST", "/v1/inventory/FF-1:restock", { body: { quantity: 5 } });
  await system.inventory.stop("SIGKILL");
  const r = await system.api("POST", "/v1/orders", {
    body: { customerId: "fay", items: [{ sku: "FF-1", quantity: 1 }] },
    headers: { "idempotency-key": "ff-1", "x-request-timeout": "3000" },
  });
  expect(r.status).toBe(503);
  expect(["DEPENDENCY_UNAVAILABLE", "CIRCUIT_OPEN"]).toContain(reasonOf(r.body));
  // The client, and the gateway's metrics, are told it is the inventory that is down, not the order service that answered.
  expect(r.body.message).toMatch(/^inventory /);
  const { metadata } = r.body.details.find((d: { reason?: string }) => d.reason);
  // The order was recorded and announced, to be reserved through events: the error names it, so a client without a key
  // does not place a second, and a read finds it.
  expect(metadata).toMatchObject({ dependency: "inventory", orderId: expect.stringMatching(/^ord_/), orderVersion: "1" });
  const gatewayMetrics = await scrape(`${system.adminUrl}/metrics`);
  expect(["relayed", "error"].map((outcome) => sampleValue(gatewayMetrics, "orderly_dependency_calls_total", { dependency: "order", outcome }))).toEqual([1, 0]);
  type Report = { processes: { name: string; status?: { dependencies: { name: string; relayed: number; failures: number }[] } }[] };
  const report = (await (await fetch(`${system.adminUrl}/status.json`)).json()) as Report;
  const orderCard = report.processes.find((p) => p.name === "gateway")?.status?.dependencies.find((d) => d.name === "order");
  expect(orderCard).toMatchObject({ relayed: 1, failures: 0 });
  const pending = await system.api("GET", `/v1/orders/${metadata.orderId}?minVersion=1`);
  expect([pending.status, pending.body.status]).toEqual([200, "ORDER_STATUS_PENDING"]);
  // A retry with the key tries the reservation again, as fail-fast does (not a 202): still down, the same order named.
  const again = await system.api("POST", "/v1/orders", { body: { customerId: "fay", items: [{ sku: "FF-1", quantity: 1 }] }, headers: { "idempotency-key": "ff-1", "x-request-timeout": "3000" } });
  expect([again.status, again.body.details.find((d: { reason?: string }) => d.reason).metadata.orderId]).toEqual([503, metadata.orderId]);
  // One of a SKU the inventory does not know (yet): named too, and so kept, to be rejected rather than discarded unseen.
  const unknown = await system.api("POST", "/v1/orders", { body: { customerId: "fay", items: [{ sku: "FF-NOT-YET", quantity: 1 }] }, headers: { "x-request-timeout": "3000" } });
  const unknownId = unknown.body.details.find((d: { reason?: string }) => d.reason).metadata.orderId as string;
  expect([unknown.status, unknownId]).toEqual([503, expect.stringMatching(/^ord_/)]);
  await system.restart("inventory");
  const item = await waitFor(async () => {
    const it = await system.api("GET", "/v1/inventory/FF-1");
    return it.body.reserved === 1 ? it.body : undefined;
  }, "the inventory to reserve the pending order from its event");
  expect(item).toMatchObject({ available: 4, reserved: 1 });
  const confirmed = await system.api("GET", `/v1/orders/${metadata.orderId}?minVersion=2`);
  expect([confirmed.status, confirmed.body.status]).toEqual([200, "ORDER_STATUS_CONFIRMED"]);
  const retried = await system.api("POST", "/v1/orders", { body: { customerId: "fay", items: [{ sku: "FF-1", quantity: 1 }] }, headers: { "idempotency-key": "ff-1" } });
  expect(retried.status).toBe(200);
  expect(retried.body).toMatchObject({ id: metadata.orderId, status: "ORDER_STATUS_CONFIRMED" });
  const rejected = await system.api("GET", `/v1/orders/${unknownId}?minVersion=2`);
  expect([rejected.status, rejected.body.status, rejected.body.rejectReason]).toEqual([200, "ORDER_STATUS_REJECTED", "UNKNOWN_SKU"]);
});

test("a reservation whose order never confirms is released after RESERVATION_TTL_MS, and a confirmed order's never is", async () => {
  await using system = await startSystem({ RESERVATION_TTL_MS: "1500", RESERVATION_SWEEP_INTERVAL_MS: "200" });
  await system.api("POST", "/v1/inventory/TTL-1:restock", { body: { quantity: 10 } });
  const confirmed = await system.api("POST", "/v1/orders", { body: { customerId: "tia", items: [{ sku: "TTL-1", quantity: 2 }] } });
  expect(confirmed.body.status).toBe("ORDER_STATUS_CONFIRMED");

  // An orphan: stock reserved over gRPC for an order the order service never heard of (as after a crash mid-way).
  const { connection, inventory } = adminInventoryClient(system);
  const reservedIs = (n: number) =>
    waitFor(async () => {
      const it = await system.api("GET", "/v1/inventory/TTL-1");
      return it.body.reserved === n ? it.body : undefined;
    }, `reserved to be ${n}`, 15_000, 100);
  try {
    await inventory.reserveStock({ orderId: "ord_orphan_1", lines: [{ sku: "TTL-1", quantity: 3 }] });
    expect((await system.api("GET", "/v1/inventory/TTL-1")).body).toMatchObject({ available: 5, reserved: 5 });
    expect(await reservedIs(2)).toMatchObject({ available: 8, reserved: 2 });
    // A second orphan made after the confirmed order's reservation: once it expires, sweeps have run past the
    // confirmed reservation's TTL too — and that one is still held.
    await inventory.reserveStock({ orderId: "ord_orphan_2", lines: [{ sku: "TTL-1", quantity: 1 }] });
    await reservedIs(3);
    expect(await reservedIs(2)).toMatchObject({ available: 8, reserved: 2 });
  } finally {
    connection.close();
  }
});

test("a confirmed order whose OrderConfirmed is late (NATS down past RESERVATION_TTL_MS) keeps its stock: the order service, not the events, decides", async () => {
  await using system = await startSystem({ RESERVATION_TTL_MS: "1500", RESERVATION_SWEEP_INTERVAL_MS: "200" });
  await system.api("POST", "/v1/inventory/LATE-1:restock", { body: { quantity: 10 } });
  await system.nats.kill();
  // Orders are still taken and confirmed over gRPC; their events wait in the outboxes.
  const confirmed = await system.api("POST", "/v1/orders", { body: { customerId: "lee", items: [{ sku: "LATE-1", quantity: 2 }] } });
  expect(confirmed.body.status).toBe("ORDER_STATUS_CONFIRMED");
  const { connection, inventory } = adminInventoryClient(system);
  const inventoryDb = openReadOnly(system.dataDir, "inventory.db");
  try {
    // And an orphan, reserved for an order the order service never heard of.
    await inventory.reserveStock({ orderId: "ord_orphan_late", lines: [{ sku: "LATE-1", quantity: 3 }] });
    const reservation = (orderId: string) =>
      inventoryDb.prepare("SELECT state, order_confirmed AS confirmed FROM reservations WHERE order_id = ?").get(orderId) as { state: number; confirmed: number };
    // Past the TTL, the sweep asks the order service: the confirmed order's reservation is marked (no event could have), the orphan's released.
    await waitFor(() => reservation(confirmed.body.id).confirmed === 1, "the expiry to mark the confirmed order's reservation", 15_000, 100);
    await waitFor(() => reservation("ord_orphan_late").state === 2, "the expiry to release the orphan", 15_000, 100);
    expect(reservation(confirmed.body.id).state).toBe(1);
    const item = await inventory.getItem({ sku: "LATE-1" });
    expect({ available: item.item?.available, reserved: item.item?.reserved }).toEqual({ available: 8, reserved: 2 });
  } finally {
    inventoryDb.close();
    connection.close();
  }
});

test("a cancel answers 200 within its budget when releasing the stock at once hangs; the OrderCancelled event releases it", async () => {
  await using system = await startSystem({ FAULT_DELAY_MS: "10000", FAULT_DELAY_METHODS: "ReleaseStock" });
  await system.api("POST", "/v1/inventory/HANG-1:restock", { body: { quantity: 10 } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "hal", items: [{ sku: "HANG-1", quantity: 4 }] } });
  expect(created.body.status).toBe("ORDER_STATUS_CONFIRMED");
  const started = performance.now();
  const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`, { headers: { "x-request-timeout": "1500" } });
  // A 200 is the order service's answer before the gateway's 1.5 s deadline; the hung release would have taken 10 s.
  expect(performance.now() - started).toBeLessThan(3000);
  expect({ status: cancelled.status, order: cancelled.body.status }).toEqual({ status: 200, order: "ORDER_STATUS_CANCELLED" });
  await waitFor(async () => (await system.api("GET", "/v1/inventory/HANG-1")).body.reserved === 0, "the event to release the stock", 15_000, 100);
  expect((await system.api("GET", "/v1/inventory/HANG-1")).body).toMatchObject({ available: 10, reserved: 0 });
});
