import { expect, test } from "vitest";
import { ViewChanges } from "./view-changes.js";

const reasonOf = (wait: Promise<void>) => wait.then(() => "reached", (error: { reason?: string }) => error.reason ?? String(error));

test("reads waiting for versions are bounded per caller and in all; a wait that ends, however it ends, frees its place", async () => {
  const changes = new ViewChanges({ perCaller: 2, total: 3, longestMs: 120_000 });
  const never = new AbortController().signal;
  const later = Date.now() + 60_000;
  const a1 = changes.waitFor("order", "o1", 2n, later, never, "alice");
  const cancelled = new AbortController();
  const a2 = changes.waitFor("order", "o2", 2n, later, cancelled.signal, "alice");
  // Alice's third is refused at once; bob's first is not (his own place)...
  expect(await reasonOf(changes.waitFor("order", "o3", 2n, later, never, "alice"))).toBe("TOO_MANY_WAITS");
  const b1 = changes.waitFor("order", "o1", 2n, later, never, "bob");
  // ...but the fourth in all is, whoever asks.
  expect(await reasonOf(changes.waitFor("order", "o4", 2n, later, never, "carol"))).toBe("TOO_MANY_WAITS");

  // Reached, cancelled, timed out: each frees its place.
  changes.changed("order", "o1", 2);
  expect([await reasonOf(a1), await reasonOf(b1)]).toEqual(["reached", "reached"]);
  cancelled.abort();
  expect(await reasonOf(a2)).toBe("CANCELLED");
  expect(await reasonOf(changes.waitFor("order", "o5", 2n, Date.now() + 10, never, "alice"))).toBe("VERSION_NOT_REACHED");
  const again = [changes.waitFor("order", "o6", 2n, later, never, "alice"), changes.waitFor("order", "o6", 2n, later, never, "alice"), changes.waitFor("order", "o6", 2n, later, never, "carol")];
  changes.changed("order", "o6", 3);
  expect(await Promise.all(again.map(reasonOf))).toEqual(["reached", "reached", "reached"]);

  // A caller already gone takes no place.
  const gone = new AbortController();
  gone.abort();
  expect(await reasonOf(changes.waitFor("order", "o7", 2n, later, gone.signal, "alice"))).toBe("CANCELLED");
});

test("a wait ends after the longest a read waits, however far its deadline, and frees its place", async () => {
  const changes = new ViewChanges({ perCaller: 1, total: 10, longestMs: 50 });
  const never = new AbortController().signal;
  const inDays = Date.now() + 20 * 24 * 3_600_000;
  const capped = changes.waitFor("order", "o1", 2n, inDays, never, "dave").catch((error: Error) => error);
  expect(await reasonOf(changes.waitFor("order", "o2", 2n, inDays, never, "dave"))).toBe("TOO_MANY_WAITS");
  expect(await capped).toMatchObject({ reason: "VERSION_NOT_REACHED", message: "order o1 has not reached version 2 in the read model within 50 ms, the longest a read waits" });
  // Its place is free again.
  const next = changes.waitFor("order", "o2", 2n, inDays, never, "dave");
  changes.changed("order", "o2", 2);
  expect(await reasonOf(next)).toBe("reached");
});

test("an order's view and a SKU's stock level of the same id are told apart: each wait is woken by its own view's change, and a stock wait's VERSION_NOT_REACHED names the SKU", async () => {
  const changes = new ViewChanges();
  const never = new AbortController().signal;
  const later = Date.now() + 60_000;
  const order = changes.waitFor("order", "X-1", 2n, later, never, "alice");
  const stock = changes.waitFor("stock", "X-1", 2n, later, never, "alice");
  changes.changed("stock", "X-1", 2);
  expect(await reasonOf(stock)).toBe("reached");
  const orderEnded = reasonOf(order);
  let orderSettled = false;
  void orderEnded.then(() => (orderSettled = true));
  // The order's wait goes on (what was settled has run its callbacks by the next turn of the event loop).
  await new Promise((turn) => setImmediate(turn));
  expect(orderSettled).toBe(false);
  changes.changed("order", "X-1", 2);
  expect(await orderEnded).toBe("reached");
  const timedOut = await changes.waitFor("stock", "X-1", 3n, Date.now() + 10, never, "alice").catch((error: Error) => error);
  expect(timedOut).toMatchObject({ reason: "VERSION_NOT_REACHED", message: "the stock of SKU X-1 has not reached version 3 in the read model yet", metadata: { sku: "X-1", minVersion: "3" } });
});
