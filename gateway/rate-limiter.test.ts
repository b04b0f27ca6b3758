import { expect, test } from "vitest";
import { RateLimiter } from "./rate-limiter.js";

test("a client gets its burst at once, then one request per 1/perSecond, and waits the announced time", () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 2, burst: 3 }, () => now);
  expect([limiter.take("a"), limiter.take("a"), limiter.take("a")]).toEqual([0, 0, 0]);
  expect(limiter.take("a")).toBe(1);
  expect(limiter.take("b")).toBe(0); // clients are counted apart
  now += 500; // half a second refills one token at 2/s
  expect(limiter.take("a")).toBe(0);
  expect(limiter.take("a")).toBeGreaterThan(0);
  now += 10_000; // a long pause refills to the burst, no more
  expect([limiter.take("a"), limiter.take("a"), limiter.take("a"), limiter.take("a")].filter((w) => w === 0)).toHaveLength(3);
});

test("asking how long a client would wait takes nothing, and knows no client it has not seen", () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 1, burst: 2 }, () => now);
  expect(limiter.wait("a")).toBe(0);
  expect([limiter.take("a"), limiter.wait("a"), limiter.wait("a"), limiter.take("a")]).toEqual([0, 0, 0, 0]);
  expect([limiter.wait("a"), limiter.wait("a")]).toEqual([1, 1]);
  now += 1000;
  expect([limiter.wait("a"), limiter.take("a"), limiter.wait("a")]).toEqual([0, 0, 1]);
});
