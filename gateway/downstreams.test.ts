import { expect, test } from "vitest";
import { Health } from "../proto/gen/grpc/health/v1/health_pb.js";
import { HealthState, startGrpcServer } from "../shared/grpc/index.js";
import { silentLogger } from "../shared/logging/index.js";
import { defaultDependencyPolicyOptions } from "../shared/resilience/index.js";
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
