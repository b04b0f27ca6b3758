import { expect, test } from "vitest";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { waitFor } from "../../test/helpers/processes.js";
import { OrderlyError } from "../errors/index.js";
import { silentLogger } from "../logging/index.js";
import { callUnary, connect } from "./client.js";
import { registration, startGrpcServer } from "./server.js";
import type { ServiceHandlers } from "./types.js";

test("a call's signal is aborted when its caller cancels it, and never once the call has been answered", async () => {
  const stackTraceLimit = Error.stackTraceLimit;
  const signals = new Map<string, AbortSignal>();
  const handlers = {
    // "wait" is answered only when its caller has gone; any other id at once.
    getOrder: async ({ id }, context) => {
      signals.set(id, context.signal);
      if (id === "wait") await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
      return { order: { id } };
    },
  } as Partial<ServiceHandlers<typeof QueryService>> as ServiceHandlers<typeof QueryService>;
  const server = await startGrpcServer({ host: "127.0.0.1", port: 0, logger: silentLogger(), services: [registration(QueryService, handlers)] });
  await using _server = { [Symbol.asyncDispose]: () => server.close(0) };
  const connection = connect(`127.0.0.1:${server.port}`);
  using _connection = { [Symbol.dispose]: () => connection.close() };
  const call = (id: string, signal?: AbortSignal) => callUnary(connection, QueryService.method.getOrder, { id }, { deadline: Date.now() + 10_000, signal });

  const answered = await call("answered");
  expect(answered.order?.id).toBe("answered");
  // grpc-js reports a call as cancelled once it has ended, answered or not; another round trip gives it the time to.
  await call("next");
  expect(signals.get("answered")?.aborted).toBe(false);

  const caller = new AbortController();
  const waiting = call("wait", caller.signal).catch((error: unknown) => error);
  await waitFor(() => signals.has("wait"), "the waiting call to reach its handler");
  caller.abort();
  expect(await waiting).toMatchObject({ reason: "CANCELLED" });
  await waitFor(() => signals.get("wait")!.aborted, "the handler's signal to be aborted once its caller has gone");
  expect(signals.get("wait")!.reason).toBeInstanceOf(OrderlyError);
  expect(signals.get("wait")!.reason).toMatchObject({ reason: "CANCELLED" });
  // The client turns stack capture off while grpc-js starts a call (see withoutStackCapture), and back on.
  expect(Error.stackTraceLimit).toBe(stackTraceLimit);
});
