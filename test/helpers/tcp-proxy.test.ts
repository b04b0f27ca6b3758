import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, test, vi } from "vitest";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { callUnary, connect as connectGrpc, ServingStatus, startGrpcServer } from "../../shared/grpc/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { startTcpProxy } from "./tcp-proxy.js";

/** An echo server on a free port of 127.0.0.1; `await using` (or disposing it early, once or more) closes it and every socket it accepted. */
async function startEchoServer() {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  let stopped: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    [Symbol.asyncDispose]() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return stopped;
    },
  };
}

/** A client socket to 127.0.0.1:port that collects what it receives and how it ended. */
async function openClient(port: number) {
  const socket = connect({ host: "127.0.0.1", port });
  let received = "";
  const waiters: Array<() => void> = [];
  socket.setEncoding("utf8");
  socket.on("data", (text: string) => {
    received += text;
    for (const wake of waiters.splice(0)) wake();
  });
  const ended = new Promise<{ error: Error | undefined }>((resolve) => {
    let error: Error | undefined;
    socket.on("error", (e) => (error = e));
    socket.once("close", () => resolve({ error }));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return {
    socket,
    ended,
    /** Waits for the next `length` characters to arrive and resolves to them. */
    async receive(length: number): Promise<string> {
      while (received.length < length) {
        if (socket.destroyed) throw new Error(`socket closed after "${received}" (${length} characters expected)`);
        await new Promise<void>((wake) => {
          waiters.push(wake);
          void ended.then(() => wake());
        });
      }
      const text = received.slice(0, length);
      received = received.slice(length);
      return text;
    },
    /** Sends text, checks that it comes back unchanged, and resolves to the round trip in ms. */
    async roundTrip(text: string): Promise<number> {
      const started = performance.now();
      socket.write(text);
      expect(await this.receive(text.length)).toBe(text);
      return performance.now() - started;
    },
    [Symbol.dispose]() {
      socket.destroy();
    },
  };
}

/** Resolves to "timeout" after ms unless promise settles first; the timer never outlives the race. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function handleCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) {
    if (name === "TCPSocketWrap" || name === "TCPServerWrap" || name === "Timeout") counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/**
 * Open sockets, servers and timers, read once handles being closed are gone
 * (a closed handle is released a turn or two of the event loop later): turns
 * the loop, with no timer, until the counts equal `expected` or, when none is
 * given, stay the same for 5 turns; at most 100 turns.
 */
async function settledHandleCounts(expected?: Record<string, number>): Promise<Record<string, number>> {
  let counts = handleCounts();
  let unchanged = 0;
  for (let turn = 0; turn < 100; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
    const next = handleCounts();
    if (expected !== undefined && isDeepStrictEqual(next, expected)) return next;
    unchanged = isDeepStrictEqual(next, counts) ? unchanged + 1 : 0;
    if (expected === undefined && unchanged === 5) return next;
    counts = next;
  }
  return counts;
}

describe("tcp proxy", () => {
  test("passes bytes through unchanged by default", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using client = await openClient(proxy.port);

    await client.roundTrip("hello");
    await client.roundTrip("x".repeat(256 * 1024));

    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
  });

  test("delay(200) holds each direction for 200 ms, on an already open connection", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using client = await openClient(proxy.port);
    expect(await client.roundTrip("before")).toBeLessThan(200);

    proxy.delay(200);
    const elapsed = await client.roundTrip("slow");

    expect(elapsed).toBeGreaterThanOrEqual(400); // 200 ms up, 200 ms down
    expect(elapsed).toBeLessThan(1000);
  });

  test("delay keeps the order of chunks in each direction", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using client = await openClient(proxy.port);

    proxy.delay(100);
    client.socket.write("one,");
    await vi.waitFor(() => expect(proxy.stats().bytesHeld).toBe(4));
    proxy.pass(); // later chunks, though not delayed, wait behind the delayed one
    client.socket.write("two,");
    client.socket.write("three");

    expect(await client.receive(13)).toBe("one,two,three");
  });

  test("reset() closes open connections and every new one", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using open = await openClient(proxy.port);
    await open.roundTrip("ping");

    const started = performance.now();
    proxy.reset();
    const outcome = await within(open.ended, 1000);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(outcome).toMatchObject({ error: { code: "ECONNRESET" } });

    const late = connect({ host: "127.0.0.1", port: proxy.port });
    using _late = { [Symbol.dispose]: () => late.destroy() };
    late.on("error", () => {}); // ECONNRESET is the expected outcome, checked below through "close"
    late.write("anyone?");
    const lateEnded = await within(new Promise<void>((resolve) => late.once("close", () => resolve())), 1000);
    expect(lateEnded).not.toBe("timeout");
    expect(proxy.stats().bytesUp).toBe(4);
  });

  test("blackhole() forwards nothing until pass(), then delivers what it held", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using client = await openClient(proxy.port);
    await client.roundTrip("warm");

    proxy.blackhole();
    const reply = client.roundTrip("lost?");
    reply.catch(() => {}); // awaited below; this only keeps a failed test from adding an unhandled rejection
    expect(await within(reply, 300)).toBe("timeout");
    expect(client.socket.destroyed).toBe(false);

    proxy.pass();
    await reply;
    await client.roundTrip("back");
  });

  test("blackhole() accepts new connections but answers nothing", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    proxy.blackhole();

    using client = await openClient(proxy.port);
    const reply = client.roundTrip("hello?");
    reply.catch(() => {}); // awaited below; this only keeps a failed test from adding an unhandled rejection
    expect(await within(reply, 300)).toBe("timeout");

    proxy.pass();
    await reply;
  });

  test("stats() counts connections and bytes each way", async () => {
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    expect(proxy.stats()).toEqual({ accepted: 0, open: 0, bytesUp: 0, bytesDown: 0, bytesHeld: 0 });

    using first = await openClient(proxy.port);
    using second = await openClient(proxy.port);
    await first.roundTrip("12345");
    await second.roundTrip("678");
    expect(proxy.stats()).toEqual({ accepted: 2, open: 2, bytesUp: 8, bytesDown: 8, bytesHeld: 0 });

    first.socket.end();
    await first.ended;
    await vi.waitFor(() => expect(proxy.stats().open).toBe(1));
    expect(proxy.stats().accepted).toBe(2);
  });

  test("closes the client side when the target is down", async () => {
    const echo = await startEchoServer();
    const port = echo.port;
    await echo[Symbol.asyncDispose]();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port });

    using client = await openClient(proxy.port);
    const started = performance.now();
    expect(await within(client.ended, 1000)).not.toBe("timeout");

    expect(performance.now() - started).toBeLessThan(1000);
    await vi.waitFor(() => expect(proxy.stats()).toMatchObject({ accepted: 1, open: 0, bytesUp: 0 }));
  });

  test("close() stops listening and leaves no socket or timer behind", async () => {
    const before = await settledHandleCounts();
    await using echo = await startEchoServer();
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: echo.port });
    using client = await openClient(proxy.port);
    await client.roundTrip("ping");
    proxy.delay(10_000);
    client.socket.write("held in a timer");
    await vi.waitFor(() => expect(proxy.stats().bytesHeld).toBe(15));

    await proxy.close();
    await proxy.close(); // a second close is harmless
    await client.ended;
    await echo[Symbol.asyncDispose]();

    expect(proxy.stats().open).toBe(0);
    const refused = await new Promise<string | undefined>((resolve) => {
      const probe = connect({ host: "127.0.0.1", port: proxy.port });
      probe.once("connect", () => {
        probe.destroy();
        resolve(undefined);
      });
      probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
    });
    expect(refused).toBe("ECONNREFUSED");
    // Nothing leaked: no more sockets, servers or timers than before (other code's timers may come and go).
    const after = await settledHandleCounts(before);
    for (const name of ["TCPSocketWrap", "TCPServerWrap", "Timeout"]) expect(after[name] ?? 0).toBeLessThanOrEqual(before[name] ?? 0);
  });
});

describe("tcp proxy in front of a grpc-js server", () => {
  test("passes calls, delays them past their deadline, and resets them to UNAVAILABLE", async () => {
    const server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      logger: silentLogger(),
      services: [],
    });
    await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
    await using proxy = await startTcpProxy({ host: "127.0.0.1", port: server.port });
    const connection = connectGrpc(proxy.address);
    using _connection = { [Symbol.dispose]: () => connection.close() };

    const healthy = await callUnary(connection, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 });
    expect(healthy.status).toBe(ServingStatus.SERVING);

    proxy.delay(1000);
    const slow = await callUnary(connection, Health.method.check, { service: "" }, { deadline: Date.now() + 300 }).catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(OrderlyError);
    expect(slow).toMatchObject({ reason: "DEADLINE_EXCEEDED", code: 4 });

    proxy.reset();
    let started = performance.now();
    const dropped = await callUnary(connection, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(dropped).toBeInstanceOf(OrderlyError);
    expect(dropped).toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE", code: 14 });

    // A new channel connects, and the proxy resets it at once.
    const accepted = proxy.stats().accepted;
    const fresh = connectGrpc(proxy.address);
    using _fresh = { [Symbol.dispose]: () => fresh.close() };
    started = performance.now();
    const refused = await callUnary(fresh, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(refused).toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE", code: 14 });
    expect(proxy.stats().accepted).toBeGreaterThan(accepted);
  });
});
