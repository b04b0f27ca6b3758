/** The environment a process reads its configuration from. */
export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration value that is present but not usable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Reads a string, or the default when unset or empty. */
export function readString(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === "" ? fallback : value;
}

/** Reads an integer within [min, max], or the default when unset or empty. */
export function readInt(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Reads one of a fixed set of values, or the default when unset or empty. */
export function readChoice<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${choices.join(", ")}, got "${raw}"`);
  }
  return raw as T;
}

/**
 * Reads a host:port from `name`; when it is unset, 127.0.0.1 and the port in
 * `portName` (the process's own port variable, read only then: a process
 * told the address never trips on a port of 0 it inherited, which asks the
 * other process to pick one).
 */
export function readAddress(env: Env, name: string, portName: string, defaultPort: number, minPort = 1): string {
  const address = readString(env, name, "");
  return address !== "" ? address : `127.0.0.1:${readInt(env, portName, defaultPort, minPort, 65535)}`;
}

const NATS_SCHEMES = new Set(["nats:", "tls:", "ws:", "wss:"]);

/**
 * Reads NATS_URL (comma-separated server URLs; `host:port` means nats://), or
 * the default when unset or empty. One that names no server refuses the start
 * at once, rather than each service retrying it for ever.
 */
export function readNatsUrl(env: Env, fallback: string): string {
  const raw = readString(env, "NATS_URL", fallback);
  for (const entry of raw === "" ? [] : raw.split(",")) {
    const server = entry.trim();
    let url: URL | undefined;
    try {
      url = new URL(server.includes("://") ? server : `nats://${server}`);
    } catch {
      url = undefined;
    }
    if (url === undefined || !NATS_SCHEMES.has(url.protocol) || url.hostname === "") {
      throw new ConfigError(`NATS_URL must be server URLs separated by commas (nats://host:port, tls://, ws://, wss://), got "${raw}"`);
    }
  }
  return raw;
}
