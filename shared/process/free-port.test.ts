import { createServer } from "node:net";
import { expect, test } from "vitest";
import { freePorts, outgoingPortRange } from "./free-port.js";

test("free ports differ, can be bound, and lie outside the range outgoing connections take their ports from", async () => {
  const range = outgoingPortRange();
  const first = await freePorts(20);
  const second = await freePorts(20);
  const ports = [...first, ...second];
  // Not handed out twice by one process, even once released: one may not be bound yet.
  expect(new Set(ports).size).toBe(40);
  if (range !== undefined) expect(ports.filter((port) => port >= range.low && port <= range.high)).toEqual([]);
  for (const port of first) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  }
});
