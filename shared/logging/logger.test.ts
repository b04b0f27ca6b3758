import { ROOT_CONTEXT, context, trace, type Context } from "@opentelemetry/api";
import { afterEach, expect, test } from "vitest";
import { SyncContextManager } from "../observability/sync-context-manager.js";
import { callLogger, createLogger, logInTrace } from "./logger.js";

const call = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };
const other = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };
const contextOf = (ids: { traceId: string; spanId: string }): Context => trace.setSpanContext(ROOT_CONTEXT, { ...ids, traceFlags: 1 });

/** A process logger writing its lines, parsed, into `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

afterEach(() => context.disable());

test("a call's logger names the call's trace on every line, and so do its children; the process logger does not", () => {
  const { logger, lines } = capture();
  const forCall = callLogger(logger, { requestId: "r1" });
  logInTrace(forCall, contextOf(call));
  forCall.info("in the call");
  forCall.child({ orderId: "o1" }).info("in a child");
  logger.info("outside");
  expect(lines.map(({ msg, traceId, spanId }) => ({ msg, traceId, spanId }))).toEqual([
    { msg: "in the call", ...call },
    { msg: "in a child", ...call },
    { msg: "outside", traceId: undefined, spanId: undefined },
  ]);
});

test("without a trace of its own, a line names the active trace while one is active", () => {
  context.setGlobalContextManager(new SyncContextManager());
  const { logger, lines } = capture();
  context.with(contextOf(other), () => logger.info("applying an event"));
  const forCall = callLogger(logger, {});
  context.with(contextOf(other), () => forCall.info("not yet in its call's trace"));
  logInTrace(forCall, contextOf(call));
  context.with(contextOf(other), () => forCall.info("its own trace wins"));
  expect(lines.map(({ traceId, spanId }) => ({ traceId, spanId }))).toEqual([other, other, call]);
});

test("only a call's own logger can be put in a trace: not the process logger, nor a child of a call's", () => {
  const { logger, lines } = capture();
  expect(() => logInTrace(logger, contextOf(call))).toThrow(/call's own logger/);
  expect(() => logInTrace(callLogger(logger, {}).child({}), contextOf(call))).toThrow(/call's own logger/);
  logger.info("still outside any trace");
  expect(lines[0]).not.toHaveProperty("traceId");
});
