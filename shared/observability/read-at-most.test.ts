import { expect, test } from "vitest";
import { readAtMost } from "./read-at-most.js";

test("readAtMost reads once per interval and shares that answer, a pending promise included", async () => {
  let now = 0;
  let reads = 0;
  let settle: (n: number) => void = () => {};
  const read = readAtMost(1000, () => (reads++, new Promise<number>((resolve) => (settle = resolve))), () => now);
  const [a, b] = [read(), read()];
  expect(a).toBe(b);
  settle(1);
  expect(await a).toBe(1);
  now = 999;
  expect(await read()).toBe(1);
  now = 1000;
  const c = read();
  settle(2);
  expect([await c, reads]).toEqual([2, 2]);
});
