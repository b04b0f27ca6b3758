import { expect, test } from "vitest";
import { answerByOf, defaultCallBudget } from "./server.js";

const now = 1_000_000;

test("an answer keeps a tenth of the time left, at least 20 ms and at most a second", () => {
  expect(answerByOf(now + 2000, now, defaultCallBudget)).toBe(now + 1800);
  expect(answerByOf(now + 100, now, defaultCallBudget)).toBe(now + 80);
  expect(answerByOf(now + 60_000, now, defaultCallBudget)).toBe(now + 59_000);
});

test("a call without a deadline gets the default budget, and the same margin", () => {
  expect(answerByOf(undefined, now, defaultCallBudget)).toBe(now + 4500);
  expect(answerByOf(undefined, now, { defaultMs: 800, answerMarginMs: defaultCallBudget.answerMarginMs })).toBe(now + 720);
});

test("a server's own margin replaces the default one (the order service's DEGRADE_MARGIN_MS)", () => {
  const budget = { defaultMs: 5000, answerMarginMs: () => 250 };
  expect(answerByOf(now + 2000, now, budget)).toBe(now + 1750);
  expect(answerByOf(undefined, now, budget)).toBe(now + 4750);
});

test("a deadline already passed gives an answer time before it (the deadline check refuses such a call first)", () => {
  expect(answerByOf(now - 10, now, defaultCallBudget)).toBe(now - 30);
});

test("a margin that is not a positive number keeps none: the answer is due at the deadline, never after it", () => {
  expect(answerByOf(now + 2000, now, { defaultMs: 5000, answerMarginMs: () => -300 })).toBe(now + 2000);
  expect(answerByOf(now + 2000, now, { defaultMs: 5000, answerMarginMs: () => Number.NaN })).toBe(now + 2000);
});
