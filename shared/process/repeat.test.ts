import { afterEach, expect, test, vi } from "vitest";
import { silentLogger } from "../logging/index.js";
import { repeat } from "./repeat.js";

afterEach(() => {
  vi.useRealTimers();
});

test("a repeated task never runs twice at once, a failed run does not stop it, and close waits for the run under way", async () => {
  vi.useFakeTimers();
  let running = 0;
  let most = 0;
  let runs = 0;
  let release: (() => void) | undefined;
  const repeating = repeat(
    5,
    async () => {
      runs++;
      running++;
      most = Math.max(most, running);
      // Each run lasts until the test lets it end.
      await new Promise<void>((resolve) => (release = resolve));
      running--;
      if (runs === 1) throw new Error("the first run fails");
    },
    silentLogger(),
    "test task",
  );
  for (let n = 1; n <= 3; n++) {
    // Twenty ticks while run n is under way: one run starts, the other ticks are skipped.
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toBe(n);
    release!();
    await vi.advanceTimersByTimeAsync(0);
  }
  await vi.advanceTimersByTimeAsync(5);
  expect(runs).toBe(4);
  const closed = repeating.close();
  expect(repeating.stopped).toBe(true);
  release!();
  await closed;
  await vi.advanceTimersByTimeAsync(100);
  expect({ runs, running, most }).toEqual({ runs: 4, running: 0, most: 1 });
});
