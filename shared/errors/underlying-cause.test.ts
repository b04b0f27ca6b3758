import { expect, test } from "vitest";
import { OrderlyError } from "./orderly-error.js";
import { fromStatus } from "./status.js";
import { Code } from "./code.js";
import { underlyingCause } from "./underlying-cause.js";

test("the underlying cause is the last of an error's cause chain, as the transport said it; nothing when there is none or it says the same", () => {
  // What a dependency policy makes of grpc-js's failure to connect with no file descriptors left.
  const transport = fromStatus(Code.UNAVAILABLE, "No connection established. Last error: Error: connect EMFILE 127.0.0.1:50052 - Local (undefined:undefined)");
  const policy = new OrderlyError("DEPENDENCY_UNAVAILABLE", "inventory is unavailable", { cause: transport });
  expect(underlyingCause(policy)).toBe("No connection established. Last error: Error: connect EMFILE 127.0.0.1:50052 - Local (undefined:undefined)");
  expect(underlyingCause(new OrderlyError("DEPENDENCY_UNAVAILABLE", "inventory is unavailable"))).toBeUndefined();
  expect(underlyingCause(new Error("same", { cause: new Error("same") }))).toBeUndefined();
  expect(underlyingCause(new Error("outer", { cause: "a string cause" }))).toBe("a string cause");
  // A chain that loops ends all the same: after a bounded walk (eight steps), back at the error itself, so nothing under it.
  const looped = new Error("a");
  looped.cause = new Error("b", { cause: looped });
  expect(underlyingCause(looped)).toBeUndefined();
  expect(underlyingCause("not an error")).toBeUndefined();
});
