import type { DescMethod } from "@bufbuild/protobuf";
import { expect, test, vi } from "vitest";
import { callContext } from "../../test/helpers/call-context.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { chain, defaultInterceptors, enforceDeadline, ANSWER_WAY_BACK_MS, logCalls, traceCalls, type Interceptor } from "./interceptors.js";

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
  // The clock stands still, so that the time left is what each call is given.
  vi.useFakeTimers({ toFake: ["Date"], now: 1_000_000 });
  try {
    const ran: string[] = [];
    const run = chain([enforceDeadline], async (_request, context) => void ran.push(context.rpc?.name ?? "?"));
    const { createOrder, cancelOrder, getOrder } = OrderService.method;
    const call = (rpc: DescMethod, leftMs: number) =>
      run({} as never, callContext({ rpc, deadline: Date.now() + leftMs })).then(() => "ran", (error: { reason?: string; message?: string }) => `${error.reason}: ${error.message}`);
    expect(ANSWER_WAY_BACK_MS).toBe(20);
    expect([await call(createOrder, 10), await call(cancelOrder, 19.5), await call(createOrder, 20), await call(getOrder, 1), await call(getOrder, 0)]).toEqual([
      "DEADLINE_EXCEEDED: too little time left to make a change and answer in time (10 ms of the 20 ms it takes at least): nothing was changed",
      "DEADLINE_EXCEEDED: too little time left to make a change and answer in time (19 ms of the 20 ms it takes at least): nothing was changed",
      "ran",
      "ran",
      "DEADLINE_EXCEEDED: deadline exceeded before the call started",
    ]);
    expect(ran).toEqual(["CreateOrder", "GetOrder"]);
    // Without a deadline (a call of the service's own default budget), anything runs.
    await run({} as never, callContext({ rpc: createOrder }));
    expect(ran).toEqual(["CreateOrder", "GetOrder", "CreateOrder"]);
  } finally {
    vi.useRealTimers();
  }
});
