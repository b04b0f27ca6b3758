import { ROOT_CONTEXT } from "@opentelemetry/api";
import { expect, test } from "vitest";
import { silentLogger } from "../logging/index.js";
import type { CallContext } from "./context.js";
import { chain, defaultInterceptors, enforceDeadline, logCalls, traceCalls, type Interceptor } from "./interceptors.js";

const context = (overrides: Partial<CallContext> = {}): CallContext => ({
  method: "test/Method",
  rpc: undefined,
  principal: undefined,
  requestId: "r1",
  deadline: undefined,
  answerBy: Date.now() + 5000,
  signal: new AbortController().signal,
  logger: silentLogger(),
  traceContext: ROOT_CONTEXT,
  metadata: {},
  responseHeaders: {},
  ...overrides,
});

test("interceptors run in list order, the first outermost", async () => {
  const order: string[] = [];
  const tag = (name: string): Interceptor => (next) => async (req, ctx) => {
    order.push(`${name}>`);
    const res = await next(req, ctx);
    order.push(`<${name}`);
    return res;
  };
  const run = chain([tag("a"), tag("b")], async () => {
    order.push("handler");
    return "ok";
  });
  await run({} as never, context());
  expect(order).toEqual(["a>", "b>", "handler", "<b", "<a"]);
});

test("the default chain traces outermost, then logs, then refuses expired deadlines before the handler runs", async () => {
  expect(defaultInterceptors).toEqual([traceCalls, logCalls, enforceDeadline]);
  let ran = false;
  const run = chain(defaultInterceptors, async () => {
    ran = true;
  });
  await expect(run({} as never, context({ deadline: Date.now() - 1 }))).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
  const aborted = new AbortController();
  aborted.abort();
  await expect(run({} as never, context({ signal: aborted.signal }))).rejects.toMatchObject({ reason: "CANCELLED" });
  expect(ran).toBe(false);
});
