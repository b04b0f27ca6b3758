import { expect, test } from "vitest";
import { LoadShedder } from "./load-shedder.js";

test("requests beyond the in-flight limit are refused at once with OVERLOADED, and admitted again once one ends", () => {
  const shedder = new LoadShedder({ maxInFlight: 2, maxEventLoopLagMs: 10_000 });
  try {
    const first = shedder.admit();
    shedder.admit();
    expect(() => shedder.admit()).toThrow(expect.objectContaining({ reason: "OVERLOADED", code: 14 }));
    first();
    first();
    expect(shedder.current).toBe(1);
    expect(() => shedder.admit()).not.toThrow();
    expect(shedder.stats.shedInFlight).toBe(1);
  } finally {
    shedder.close();
  }
});
