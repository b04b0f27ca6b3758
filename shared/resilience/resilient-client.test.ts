import { expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { connect } from "../grpc/client.js";
import { registration, startGrpcServer } from "../grpc/server.js";
import type { ServiceHandlers } from "../grpc/types.js";
import { silentLogger } from "../logging/index.js";
import { DependencyPolicy } from "./dependency-policy.js";
import { createResilientClient } from "./resilient-client.js";

/**
 * A query service on a real grpc-js server whose GetOrder answers at once,
 * except: an id starting "slow" is answered the first time only once its
 * call has ended; one starting "never", never before its call has ended.
 */
async function startQueryService() {
  const calls: string[] = [];
  const handlers = {
    getOrder: async ({ id }, context) => {
      calls.push(id);
      if (id.startsWith("never") || (id.startsWith("slow") && calls.filter((c) => c === id).length === 1)) {
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      }
      return { order: { id } };
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, handlers)] });
  const connection = connect(`127.0.0.1:${server.port}`);
  return {
    calls,
    connection,
    async [Symbol.asyncDispose]() {
      connection.close();
      await server.close(0);
    },
  };
}

test("over grpc-js, an attempt that outlives its attempt timeout ends at its deadline and is retried; a call without a signal holds no listener", async () => {
  await using service = await startQueryService();
  // An attempt timeout a busy machine's stall does not reach (at 300 ms, CI once saw the answering attempt cut too).
  const policy = new DependencyPolicy({ name: "query", attemptTimeoutMs: 1000, maxAttempts: 3, backoffInitialMs: 1, backoffMaxMs: 2, probe: async () => {} });
  const client = createResilientClient(QueryService, service.connection, policy);
  const started = Date.now();
  const answer = await client.getOrder({ id: "slow-1" }, { deadline: Date.now() + 10_000 });
  expect(answer.order?.id).toBe("slow-1");
  // The first attempt was cut by grpc-js at its 1 s deadline, long before the call's own.
  expect(Date.now() - started).toBeLessThan(5000);
  expect(service.calls).toEqual(["slow-1", "slow-1"]);
  expect(policy.stats).toMatchObject({ calls: 1, attempts: 2, retries: 1, failures: 0 });

  // Calls without a caller's signal, many at once: nothing is shared between them to leak listeners on.
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on("warning", onWarning);
  try {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, n) => client.getOrder({ id: `fast-${n}` }, { deadline: Date.now() + 10_000 })));
    expect(answers.map((a) => a.order?.id)).toEqual(Array.from({ length: 40 }, (_, n) => `fast-${n}`));
  } finally {
    process.off("warning", onWarning);
  }
  expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
});

test("over grpc-js, a dependency that answers no attempt in time fails the call with DEADLINE_EXCEEDED by its deadline", async () => {
  await using service = await startQueryService();
  const policy = new DependencyPolicy({ name: "query", attemptTimeoutMs: 700, maxAttempts: 2, backoffInitialMs: 1, backoffMaxMs: 2, breakerFailures: 10, probe: async () => {} });
  const client = createResilientClient(QueryService, service.connection, policy);
  const started = Date.now();
  const error = await client.getOrder({ id: "never" }, { deadline: Date.now() + 1000 }).catch((e: unknown) => e);
  expect(error).toMatchObject({ reason: "DEADLINE_EXCEEDED" });
  // By the deadline (two whole attempts would take 1400 ms).
  expect(Date.now() - started).toBeLessThan(1350);
  // The first attempt ended at its 700 ms attempt timeout, the second at the call's deadline.
  expect(service.calls).toEqual(["never", "never"]);
  expect(policy.stats).toMatchObject({ attempts: 2, retries: 1 });
});

test("over grpc-js, a change with too little time left to be answered is not sent (its service would refuse it), nor retried; with enough it is", async () => {
  // Every call that reaches the server, counted before the server's own deadline check could refuse it.
  const arrived: string[] = [];
  const handlers = {
    reserveStock: async () => ({}),
  } as Partial<ServiceHandlers<typeof InventoryService>> as ServiceHandlers<typeof InventoryService>;
  const server = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    logger: silentLogger(),
    services: [registration(InventoryService, handlers)],
    observeCalls: (next) => (request, context) => {
      arrived.push(context.method);
      return next(request, context);
    },
  });
  const connection = connect(`127.0.0.1:${server.port}`);
  try {
    const policy = new DependencyPolicy({ name: "inventory", attemptTimeoutMs: 1000, maxAttempts: 3, backoffInitialMs: 1, backoffMaxMs: 2, probe: async () => {} });
    const client = createResilientClient(InventoryService, connection, policy);
    const reserve = { orderId: "ord-1", lines: [{ sku: "MUG-1", quantity: 1 }] };
    // ReserveStock is IDEMPOTENT: retried on what a retry could mend, which this is not.
    const error = await client.reserveStock(reserve, { deadline: Date.now() + 10 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    expect(policy.stats.retries).toBe(0);
    await client.reserveStock(reserve, { deadline: Date.now() + 5000 });
    // Only the second call reached the server.
    expect(arrived).toEqual(["orderly.inventory.v1.InventoryService/ReserveStock"]);
  } finally {
    connection.close();
    await server.close(0);
  }
});
