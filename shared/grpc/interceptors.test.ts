import { expect, test } from "vitest";
import { callContext } from "../../test/helpers/call-context.js";
import { chain, defaultInterceptors, enforceDeadline, logCalls, traceCalls, type Interceptor } from "./interceptors.js";

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
  await run({} as never, callContext());
  expect(order).toEqual(["a>", "b>", "handler", "<b", "<a"]);
});

test("the default chain traces outermost, then logs, then refuses expired deadlines before the handler runs", async () => {
  expect(defaultInterceptors).toEqual([traceCalls, logCalls, enforceDeadline]);
  let ran = false;
  const run = chain(defaultInterceptors, async () => {
    ran = true;
  });
  await expect(run({} as never, callContext({ deadline: Date.now() - 1 }))).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
  const aborted = new AbortController();
  aborted.abort();
  await expect(run({} as never, callContext({ signal: aborted.signal }))).rejects.toMatchObject({ reason: "CANCELLED" });
  expect(ran).toBe(false);
});
