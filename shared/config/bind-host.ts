import { createServer } from "node:net";
import { ConfigError } from "./env.js";

/** Codes of a host name that does not resolve (getaddrinfo's, as Node names them). */
const UNRESOLVED = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_NONAME"]);

/**
 * The config of a process that listens on `config.host` (ORDERLY_BIND_HOST),
 * once a server could listen there: a free port on it is bound and let go at
 * once, as the process's servers will bind theirs (an IPv6 address given to
 * grpc-js in brackets, see bindAddress). A name that does not resolve, or an
 * address of another machine, is a ConfigError naming the variable, before
 * anything starts.
 */
export async function listenable<T extends { host: string }>(config: T): Promise<T> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, config.host, () => resolve());
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    const reason = UNRESOLVED.has(code)
      ? `${config.host} does not resolve (${code})`
      : code === "EADDRNOTAVAIL"
        ? `${config.host} is not an address of this machine (EADDRNOTAVAIL)`
        : `${config.host}: ${(error as Error).message}`;
    throw new ConfigError(`ORDERLY_BIND_HOST cannot be listened on: ${reason}`);
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return config;
}
