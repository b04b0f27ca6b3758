import { createServer, type Server } from "node:net";
import { outgoingPortRange, type OutgoingPortRange } from "./outgoing-port-range.js";

/** Where free ports are looked for, outside the kernel's range for outgoing connections (below it, or above it). */
const LOWEST_PICKED = 10_000;
const HIGHEST_PORT = 65_535;
/** Random ports tried for each one asked before settling for one the kernel picks. */
const TRIES = 50;

/** A free TCP port on 127.0.0.1 (bound and released at once), for a process that must be told another's port before it starts. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * Free TCP ports on 127.0.0.1, all different (bound together, then released),
 * for processes that must be told ports before they start. They are picked at
 * random outside the kernel's range for outgoing connections where that is
 * known: a port the kernel picks (bound to 0) lies in that range, and between
 * its release and its use any process's outgoing connection may take it as its
 * own end (a CI run saw a gateway refused the port it was told); outside it,
 * only another listener can.
 */
export async function freePorts(count: number): Promise<number[]> {
  const range = outgoingPortRange();
  const servers: Server[] = [];
  try {
    for (let n = 0; n < count; n++) servers.push(await bindOutside(range));
    return servers.map(portOf);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A server bound to a random free port outside `range`; to one the kernel picks when none is found. */
async function bindOutside(range: OutgoingPortRange | undefined): Promise<Server> {
  if (range !== undefined) {
    const below = Math.max(0, range.low - LOWEST_PICKED);
    const above = Math.max(0, HIGHEST_PORT - range.high);
    for (let tries = 0; tries < TRIES && below + above > 0; tries++) {
      const pick = Math.floor(Math.random() * (below + above));
      const port = pick < below ? LOWEST_PICKED + pick : range.high + 1 + (pick - below);
      const server = await bind(port).catch(() => undefined);
      if (server !== undefined) return server;
    }
  }
  return bind(0);
}

function bind(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

function portOf(server: Server): number {
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("a bound server without a port");
  return address.port;
}
