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

test("a service restarted while its breaker is open is called again once the connection to it is back, not after the breaker's half-open time", async () => {
  const serve = (port: number) => startGrpcServer({ host: "127.0.0.1", port, logger: silentLogger(), services: [], health: new HealthState({}) });
  let server = await serve(0);
  const port = server.port;
  await using _server = { [Symbol.asyncDispose]: () => server.close(1000) };
  const [order] = connectDownstreams([{ name: "order", service: Health, address: `127.0.0.1:${port}` }], {
    ...defaultDependencyPolicyOptions,
    breakerFailures: 2,
    maxAttempts: 1,
    halfOpenAfterMs: 600_000,
  });
  await using _connection = { [Symbol.asyncDispose]: async () => order!.connection.close() };
  const check = () => callWithPolicy(order!.policy, order!.connection, Health.method.check, { service: "" }, { deadline: Date.now() + 2000 });
  expect((await check()).status).toBe(1);

  // The service stops: the calls fail until the breaker opens, which would wait ten minutes before trying again.
  await server.close(1000);
  await waitFor(() => check().then(() => false, () => order!.policy.breakerState === "open"), "the breaker to open");
  await expect(check()).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", metadata: { retryAfterSeconds: "600" } });

  // Back on its port: the connection finds it (grpc-js reconnects by itself), and the next call goes through.
  server = await serve(port);
  const answered = await waitFor(() => check().then((r) => r, () => undefined), "a call to go through once the service is back", 15_000, 100);
  expect(answered.status).toBe(1);
  expect(order!.policy.breakerState).toBe("closed");
});

test("a service lost while its breaker was already open (the connection still up, then gone) is probed as soon as it is back: the idle connection is told to connect again", async () => {
  const serve = (port: number) => startGrpcServer({ host: "127.0.0.1", port, logger: silentLogger(), services: [], health: new HealthState({}) });
  let server = await serve(0);
  const port = server.port;
  await using _server = { [Symbol.asyncDispose]: () => server.close(1000) };
  const [order] = connectDownstreams([{ name: "order", service: Health, address: `127.0.0.1:${port}` }], {
    ...defaultDependencyPolicyOptions,
    breakerFailures: 2,
    maxAttempts: 1,
    halfOpenAfterMs: 600_000,
  });
  await using _connection = { [Symbol.asyncDispose]: async () => (order!.policy.close(), order!.connection.close()) };
  const check = () => callWithPolicy(order!.policy, order!.connection, Health.method.check, { service: "" }, { deadline: Date.now() + 2000 });
  expect((await check()).status).toBe(1);
  // Opened by calls that failed while the connection stayed up (as a hung service's time out).
  for (let i = 0; i < 2; i++) await order!.policy.execute(false, () => Promise.reject(new OrderlyError("DEPENDENCY_UNAVAILABLE", "timed out"))).catch(() => undefined);
  expect(order!.policy.breakerState).toBe("open");

  // Then the service goes, and comes back: no call reaches the connection (the breaker refuses them), yet it is found back.
  await server.close(1000);
  server = await serve(port);
  await waitFor(() => order!.policy.breakerState === "closed", "the breaker closed by its probe once the service is back", 15_000, 100);
  expect((await check()).status).toBe(1);
});
