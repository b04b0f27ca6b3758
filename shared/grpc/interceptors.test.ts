import type { DescMethod } from "@bufbuild/protobuf";
import { expect, test } from "vitest";
import { callContext } from "../../test/helpers/call-context.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { chain, defaultInterceptors, enforceDeadline, LEAST_TIME_FOR_A_CHANGE_MS, logCalls, traceCalls, type Interceptor } from "./interceptors.js";

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

test("a call that would change something is refused before any work with less than 20 ms left; a read is begun with whatever is left", async () => {
  const ran: string[] = [];
  const run = chain([enforceDeadline], async (_request, context) => void ran.push(context.rpc?.name ?? "?"));
  const { createOrder, cancelOrder, getOrder } = OrderService.method;
  const call = (rpc: DescMethod, leftMs: number) => run({} as never, callContext({ rpc, deadline: Date.now() + leftMs })).then(() => "ran", (error: { reason?: string; message?: string }) => `${error.reason}: ${error.message}`);
  expect(LEAST_TIME_FOR_A_CHANGE_MS).toBe(20);
  expect(await call(createOrder, 10)).toMatch(/^DEADLINE_EXCEEDED: too little time left to make a change and answer in time \((9|10) ms of the 20 ms it takes at least\): nothing was changed$/);
  expect([await call(cancelOrder, 5), await call(getOrder, 5), await call(createOrder, 200), await call(getOrder, -1)]).toEqual([
    expect.stringMatching(/^DEADLINE_EXCEEDED: too little time/),
    "ran",
    "ran",
    "DEADLINE_EXCEEDED: deadline exceeded before the call started",
  ]);
  expect(ran).toEqual(["GetOrder", "CreateOrder"]);
  // Without a deadline (a call of the service's own default budget), anything runs.
  await run({} as never, callContext({ rpc: createOrder }));
  expect(ran).toEqual(["GetOrder", "CreateOrder", "CreateOrder"]);
});
