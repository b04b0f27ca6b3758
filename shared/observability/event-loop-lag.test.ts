import { expect, test } from "vitest";
import { waitFor } from "../../test/helpers/processes.js";
import { EventLoopLag } from "./event-loop-lag.js";

test("an idle event loop reads a delay near 0 (the sampling period is not counted), a blocked one about the time it was blocked", async () => {
  const lag = new EventLoopLag();
  try {
    // Enough samples for a window (the first read may find none yet).
    await waitFor(async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return lag.read() >= 0;
    }, "a window of samples");
    // Counted, the 50 ms period would read 50 or more in every window; the least of three leaves room for a loaded machine's stalls.
    const idle: number[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      idle.push(lag.read());
    }
    expect(Math.min(...idle)).toBeLessThan(45);
    await new Promise((resolve) => setTimeout(resolve, 130));
    const blockedUntil = Date.now() + 300;
    while (Date.now() < blockedUntil) {
      // Blocks the loop for 300 ms.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lag.read()).toBeGreaterThan(200);
  } finally {
    lag.close();
  }
});
