import { afterAll } from "vitest";
import { stopLeftovers } from "./helpers/processes.js";

// A test that fails by timing out never reaches its `await using` disposal: what the helpers started for it (services,
// nats-server) would outlive the test file. Registered first, this runs after the file's own afterAll hooks.
afterAll(() => {
  const stopped = stopLeftovers();
  if (stopped > 0) console.warn(`[setup] killed ${stopped} process(es) a test left running`);
});
