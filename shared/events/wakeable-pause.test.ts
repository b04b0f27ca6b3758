import { expect, test } from "vitest";
import { wakeablePause } from "./wakeable-pause.js";

test("a pause ends when woken, every one under way; one begun after the wake runs its time", async () => {
  const backoff = wakeablePause();
  const ended: string[] = [];
  const first = backoff.pause(60_000).then(() => ended.push("first"));
  const second = backoff.pause(60_000).then(() => ended.push("second"));
  backoff.wake();
  await Promise.all([first, second]);
  expect(ended.sort()).toEqual(["first", "second"]);

  let later = false;
  const after = backoff.pause(50).then(() => (later = true));
  await Promise.resolve();
  expect(later).toBe(false);
  await after;
  expect(later).toBe(true);
});
