import { ROOT_CONTEXT, context, trace, type Context } from "@opentelemetry/api";
import { afterEach, expect, test } from "vitest";
import { SyncContextManager } from "../observability/sync-context-manager.js";
import { callLogger, createLogger, urlsForLogs, type LoggedCall } from "./logger.js";

const call = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };
const other = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };
const contextOf = (ids: { traceId: string; spanId: string }): Context => trace.setSpanContext(ROOT_CONTEXT, { ...ids, traceFlags: 1 });

/** A process logger writing its lines, parsed, into `lines`. */
function capture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", level, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

afterEach(() => context.disable());

test("a call's logger names the call's method, request id and trace on every line, and so do its children; the process logger does not", () => {
  const { logger, lines } = capture();
  const forCall = callLogger(logger, { method: "orderly.order.v1.OrderService/CreateOrder", requestId: "r1", traceContext: contextOf(call) });
  forCall.info("in the call");
  forCall.child({ orderId: "o1" }).info("in a child");
  logger.info("outside");
  expect(lines.map(({ msg, service, method, requestId, orderId, traceId, spanId }) => ({ msg, service, method, requestId, orderId, traceId, spanId }))).toEqual([
    { msg: "in the call", service: "test", method: "orderly.order.v1.OrderService/CreateOrder", requestId: "r1", orderId: undefined, ...call },
    { msg: "in a child", service: "test", method: "orderly.order.v1.OrderService/CreateOrder", requestId: "r1", orderId: "o1", ...call },
    { msg: "outside", service: "test", method: undefined, requestId: undefined, orderId: undefined, traceId: undefined, spanId: undefined },
  ]);
});

test("a call's lines name the trace the call has when they are written: the active one until it has its own", () => {
  context.setGlobalContextManager(new SyncContextManager());
  const { logger, lines } = capture();
  context.with(contextOf(other), () => logger.info("applying an event"));
  const theCall: { -readonly [K in keyof LoggedCall]: LoggedCall[K] } = { method: "m", requestId: "r2", traceContext: ROOT_CONTEXT };
  const forCall = callLogger(logger, theCall);
  context.with(contextOf(other), () => forCall.info("not yet in its call's trace"));
  theCall.traceContext = contextOf(call);
  context.with(contextOf(other), () => forCall.info("its own trace wins"));
  expect(lines.map(({ traceId, spanId }) => ({ traceId, spanId }))).toEqual([other, other, call]);
});

test("a call's logger follows the process logger's level, and its lines keep credentials redacted and their own fields", () => {
  const { logger, lines } = capture("warn");
  const forCall = callLogger(logger, { method: "m", requestId: "r3" });
  forCall.info("below the level");
  expect(forCall.isLevelEnabled("info")).toBe(false);
  logger.level = "info";
  forCall.info({ requestId: "its own", authorization: "Bearer secret" }, "at the level");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ msg: "at the level", method: "m", requestId: "its own", authorization: "[redacted]" });
});

test("server URLs are logged without the password or token in their user info", () => {
  expect(urlsForLogs("nats://query:s3cret@127.0.0.1:4222,tls://t0ken@nats.example:4443,nats://10.0.0.1:4222")).toBe(
    "nats://query:[redacted]@127.0.0.1:4222,tls://[redacted]@nats.example:4443,nats://10.0.0.1:4222",
  );
  expect(urlsForLogs("127.0.0.1:4222")).toBe("127.0.0.1:4222");
  // Whichever line logs them, under the fields that hold them.
  const { logger, lines } = capture();
  logger.info({ nats: "nats://query:s3cret@h:4222", servers: "tls://t0ken@h:4443", other: "nats://query:s3cret@h:4222" }, "listening");
  expect(lines[0]).toMatchObject({ nats: "nats://query:[redacted]@h:4222", servers: "tls://[redacted]@h:4443" });
});
