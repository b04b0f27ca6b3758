import { createServer } from "node:net";
import { expect, test } from "vitest";
import { freePorts } from "./free-port.js";
import { outgoingPortRange } from "./outgoing-port-range.js";

test("free ports differ, can be bound, and lie outside the range outgoing connections take their ports from", async () => {
  const range = outgoingPortRange();
  const ports = await freePorts(20);
  expect(new Set(ports).size).toBe(20);
  // Unless the range leaves no port from 10000 up outside it: then the kernel picks them.
  if (range !== undefined && (range.low > 10_000 || range.high < 65_535)) expect(ports.filter((port) => port >= range.low && port <= range.high)).toEqual([]);
  for (const port of ports) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  }
});
