import { expect, test } from "vitest";
import { Health } from "../proto/gen/grpc/health/v1/health_pb.js";
import { HealthState, startGrpcServer } from "../shared/grpc/index.js";
import { OrderlyError } from "../shared/errors/index.js";
import { silentLogger } from "../shared/logging/index.js";
import { callWithPolicy, defaultDependencyPolicyOptions } from "../shared/resilience/index.js";
import { waitFor } from "../test/helpers/processes.js";
import { connectDownstreams, readinessProbe } from "./downstreams.js";

test("readiness probes asked for while one is in flight share its health checks; the next one asks again", async () => {
  let checks = 0;
  let serving = true;
  const state = new HealthState({
    counted: () => {
      checks++;
      return serving;
    },
  });
  // A server with only its health service, which answers for itself.
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [], health: state });
  await using _server = { [Symbol.asyncDispose]: () => server.close(1000) };
  const downstreams = connectDownstreams([{ name: "order", service: Health, address: `127.0.0.1:${server.port}` }], defaultDependencyPolicyOptions);
  await using _connections = { [Symbol.asyncDispose]: async () => downstreams.forEach((d) => d.connection.close()) };
  const readiness = readinessProbe(downstreams);

  const burst = await Promise.all(Array.from({ length: 20 }, () => readiness()));
  expect(burst).toEqual(Array(20).fill({ ready: true, services: { order: "SERVING" } }));
  expect(checks).toBe(1);

  // Once answered, a probe asks again and sees the change.
  serving = false;
  expect(await readiness()).toEqual({ ready: false, services: { order: "NOT_SERVING" } });
  expect(checks).toBe(2);
});

/**
 * A server with only its health service, behind the gateway's downstream "order" (its breaker opening after two
 * failures and probing on its own only after ten minutes), which `restart` stops and starts again on its port.
 */
async function restartableDownstream() {
  const serve = (port: number) => startGrpcServer({ host: "127.0.0.1", port, logger: silentLogger(), services: [], health: new HealthState({}) });
  let server = await serve(0);
  const port = server.port;
  const [order] = connectDownstreams([{ name: "order", service: Health, address: `127.0.0.1:${port}` }], {
    ...defaultDependencyPolicyOptions,
    breakerFailures: 2,
    maxAttempts: 1,
    halfOpenAfterMs: 600_000,
  });
  const { policy, connection } = order!;
  return {
    policy,
    check: () => callWithPolicy(policy, connection, Health.method.check, { service: "" }, { deadline: Date.now() + 2000 }),
    stop: () => server.close(1000),
    start: async () => void (server = await serve(port)),
    [Symbol.asyncDispose]: async () => {
      policy.close();
      connection.close();
      await server.close(1000);
    },
  };
}

test("a service restarted while its breaker is open is called again once the connection to it is back, not after the breaker's half-open time", async () => {
  await using order = await restartableDownstream();
  expect((await order.check()).status).toBe(1);

  // The service stops: the calls fail until the breaker opens, which would wait ten minutes before trying again.
  await order.stop();
  await waitFor(() => order.check().then(() => false, () => order.policy.breakerState === "open"), "the breaker to open");
  await expect(order.check()).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", metadata: { retryAfterSeconds: "600" } });

  // Back on its port: the connection finds it, the policy probes it, and the next call goes through.
  await order.start();
  const answered = await waitFor(() => order.check().then((r) => r, () => undefined), "a call to go through once the service is back", 15_000, 100);
  expect(answered.status).toBe(1);
  expect(order.policy.breakerState).toBe("closed");
});

test("a service lost while its breaker was already open (the connection still up, then gone) is probed as soon as it is back: the idle connection is told to connect again", async () => {
  await using order = await restartableDownstream();
  expect((await order.check()).status).toBe(1);
  // Opened by calls that failed while the connection stayed up (as a hung service's time out).
  for (let i = 0; i < 2; i++) await order.policy.execute(false, () => Promise.reject(new OrderlyError("DEPENDENCY_UNAVAILABLE", "timed out"))).catch(() => undefined);
  expect(order.policy.breakerState).toBe("open");

  // Then the service goes, and comes back: no call reaches the connection (the breaker refuses them), yet it is found back.
  await order.stop();
  await order.start();
  await waitFor(() => order.policy.breakerState === "closed", "the breaker closed by its probe once the service is back", 15_000, 100);
  expect((await order.check()).status).toBe(1);
});
