import type { Server } from "node:net";
import { ConfigError } from "../config/env.js";
import type { Logger } from "../logging/index.js";

/**
 * Starts `server` listening on host:port. An error before it listens (the
 * port in use) rejects; one after it (an accept the kernel refused) is
 * logged, and the server goes on listening: with no listener left, a second
 * such error would have ended the process.
 */
export async function listen(server: Server, port: number, host: string, logger: Logger, what: string, setting?: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(listenRefusal(error, { host, port, setting }));
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (error) => logger.error({ err: error, server: what }, "a listening server failed to take a connection; it goes on listening"));
}

/**
 * A listen refused for where it was told to listen (the port taken, or a
 * privileged port) as a ConfigError naming the setting that chose it, so the
 * process ends with one line that says what to change; any other error, or
 * one whose setting is not known, as it is.
 */
export function listenRefusal(error: unknown, at: { host: string; port: number; setting?: string | undefined }): unknown {
  const text = error instanceof Error ? error.message : String(error);
  const why = text.includes("EADDRINUSE") ? "address already in use (is another Orderly still running?)" : text.includes("EACCES") ? "permission denied (a port below 1024 needs privileges)" : undefined;
  if (why === undefined || at.setting === undefined) return error;
  const address = at.host.includes(":") ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`;
  return new ConfigError(`${at.setting}: cannot listen on ${address}: ${why}; set ${at.setting} to a free port`);
}
