import type { Server } from "node:net";
import type { Logger } from "../logging/index.js";

/**
 * Starts `server` listening on host:port. An error before it listens (the
 * port in use) rejects; one after it (an accept the kernel refused) is
 * logged, and the server goes on listening: with no listener left, a second
 * such error would have ended the process.
 */
export async function listen(server: Server, port: number, host: string, logger: Logger, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => logger.error({ err: error, server: what }, "a listening server failed to take a connection; it goes on listening"));
}
