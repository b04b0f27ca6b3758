import { createServer, type Server, type Socket } from "node:net";
import { expect, test } from "vitest";
import type { ProcessStatus } from "../shared/observability/index.js";
import { systemStatus } from "./system-status.js";

/** A TCP server on a free loopback port that does `onConnection` with each connection; closed on dispose. */
async function tcpServer(onConnection: (socket: Socket) => void): Promise<{ port: number; [Symbol.asyncDispose](): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolveListening) => server.listen(0, "127.0.0.1", resolveListening));
  const { port } = server.address() as { port: number };
  return {
    port,
    [Symbol.asyncDispose]: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolveClosed) => server.close(resolveClosed));
    },
  };
}

const gateway: ProcessStatus = {
  name: "gateway",
  healthy: true,
  checks: {},
  pid: process.pid,
  uptimeSeconds: 1,
  rssBytes: 0,
  eventLoopLagMs: 0,
  windowSeconds: 0,
  routes: [],
  dependencies: [],
  outbox: undefined,
  consumers: [],
};

test("a service that does not answer is down with the reason in an operator's words: no answer within the timeout (paused), connection refused (gone), the socket's own words otherwise; one that answers an error is down but not called unreachable", async () => {
  // A paused process's port still accepts (the kernel does), and then nothing answers.
  await using paused = await tcpServer(() => undefined);
  // A killed process's port: nothing listens there any more.
  const gone = await tcpServer(() => undefined);
  await gone[Symbol.asyncDispose]();
  // Something else on the port: it answers, but not in HTTP.
  await using stranger = await tcpServer((socket) => socket.end("garbage\r\n\r\n"));
  // Running, and answering, but with an error instead of its report.
  await using failing = await tcpServer((socket) => socket.end("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"));

  const report = await systemStatus({
    self: async () => gateway,
    selfMetricsUrl: () => "http://127.0.0.1:9050/metrics",
    readiness: async () => ({ ready: false, services: { order: "UNREACHABLE", inventory: "UNREACHABLE", query: "UNREACHABLE", extra: "SERVING" } }),
    targets: [
      { name: "order", address: `127.0.0.1:${paused.port}` },
      { name: "inventory", address: `127.0.0.1:${gone.port}` },
      { name: "query", address: `127.0.0.1:${stranger.port}` },
      { name: "extra", address: `127.0.0.1:${failing.port}` },
    ],
    timeoutMs: 300,
  })();

  expect(report.healthy).toBe(false);
  expect(report.processes.map(({ name, healthy, status, error }) => ({ name, healthy, status, error }))).toEqual([
    { name: "gateway", healthy: true, status: gateway, error: undefined },
    { name: "order", healthy: false, status: undefined, error: "unreachable: no answer within 300 ms" },
    { name: "inventory", healthy: false, status: undefined, error: "unreachable: connection refused" },
    { name: "query", healthy: false, status: undefined, error: expect.stringMatching(/^unreachable: Response does not match the HTTP\/1\.1 protocol \(Expected HTTP\//) },
    { name: "extra", healthy: false, status: undefined, error: "its /status.json answered HTTP 500" },
  ]);
});

test("the gateway's own report failing (out of file descriptors, say) leaves it down with the reason, and the services' reports still show", async () => {
  const service: ProcessStatus = { ...gateway, name: "order", pid: 1 };
  await using order = await tcpServer((socket) => {
    const body = JSON.stringify(service);
    socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  });
  const report = await systemStatus({
    self: async () => {
      throw new Error("EMFILE: too many open files, uv_resident_set_memory");
    },
    selfMetricsUrl: () => "http://127.0.0.1:9050/metrics",
    readiness: async () => ({ ready: true, services: { order: "SERVING" } }),
    targets: [{ name: "order", address: `127.0.0.1:${order.port}` }],
  })();
  expect(report.healthy).toBe(false);
  expect(report.processes.map(({ name, healthy, status, error }) => ({ name, healthy, status, error }))).toEqual([
    { name: "gateway", healthy: false, status: undefined, error: "its own report failed: EMFILE: too many open files, uv_resident_set_memory" },
    { name: "order", healthy: true, status: service, error: undefined },
  ]);
});

test("a process that serves with a breaker not closed is not healthy, and says why beside its failing checks; the system is not healthy either", async () => {
  const breaker = (name: string, state: "closed" | "open" | "half-open") => ({ name, breaker: state, inUse: 0, queued: 0, calls: 0, retries: 0, refusals: 0, relayed: 0, failures: 0 });
  const services: Record<string, ProcessStatus> = {
    order: { ...gateway, name: "order", dependencies: [breaker("inventory", "open")] },
    query: { ...gateway, name: "query", healthy: false, checks: { database: true, nats: false }, dependencies: [] },
    inventory: { ...gateway, name: "inventory" },
  };
  await using server = await tcpServer((socket) =>
    socket.once("data", (request) => {
      const name = /^GET \/(\w+)\//.exec(request.toString())![1]!;
      const body = JSON.stringify(services[name]);
      socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    }),
  );
  // One server answers for each service, by a path prefix in its address.
  const report = await systemStatus({
    self: async () => ({ ...gateway, dependencies: [breaker("inventory", "half-open"), breaker("order", "closed")] }),
    selfMetricsUrl: () => "http://127.0.0.1:9050/metrics",
    readiness: async () => ({ ready: true, services: { order: "SERVING", query: "SERVING", inventory: "NOT_SERVING" } }),
    targets: Object.keys(services).map((name) => ({ name, address: `127.0.0.1:${server.port}/${name}` })),
  })();
  expect(report.healthy).toBe(false);
  expect(report.processes.map(({ name, healthy, problems }) => ({ name, healthy, problems }))).toEqual([
    { name: "gateway", healthy: false, problems: ["breaker for inventory half-open"] },
    { name: "order", healthy: false, problems: ["breaker for inventory open"] },
    { name: "query", healthy: false, problems: ["nats"] },
    { name: "inventory", healthy: false, problems: ["gRPC health NOT_SERVING"] },
  ]);
});
