import { readFileSync } from "node:fs";
import { isIP } from "node:net";

/** The longest delay a Node.js timer takes (ms): budgets and waits are timed with timers, and a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The environment a process reads its configuration from. */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * A configuration value that is present but not usable, or what it names:
 * a port taken, a data directory whose database another process holds or a
 * newer version migrated. A process ends on it with one line, its message.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Reads a string, or the default when unset or empty. */
export function readString(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === "" ? fallback : value;
}

/**
 * Reads an integer within [min, max], or the default when unset or empty; a
 * refusal says `why` the range is what it is, when given.
 */
export function readInt(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER, why?: string): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be between ${min} and ${max}${why === undefined ? "" : ` (${why})`}, got ${value}`);
  return value;
}

/**
 * Reads a duration (ms) waited for with a timer or sent to NATS as one, within
 * [min, MAX_TIMER_MS], or the default when unset or empty: a longer one would
 * fire at once (Node.js warns and waits 1 ms) or be refused by the server.
 */
export function readMs(env: Env, name: string, fallback: number, min = 0): number {
  return readInt(env, name, fallback, min, MAX_TIMER_MS, "ms; the longest a timer waits, about 24.8 days");
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

/** A host name's label (RFC 1123; `_` too, as container names have it). */
const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** Whether `host` is a host name; its last label is not all digits (`10.0.0.256` is no name). */
function isHostName(host: string): boolean {
  const labels = host.replace(/\.$/, "").split(".");
  return host.length <= 253 && labels.every((label) => HOST_LABEL.test(label)) && !/^\d+$/.test(labels.at(-1)!);
}

/**
 * The host of host:port and its IP version (0 for a name): a host name or
 * IPv4 address, or an IPv6 address in brackets, and a port from 1 to 65535;
 * undefined for anything else.
 */
function hostOf(address: string): { host: string; ip: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) return undefined;
  const [, bracketed, plain] = match;
  if (bracketed !== undefined) return isIP(bracketed) === 6 ? { host: bracketed, ip: 6 } : undefined;
  const ip = isIP(plain!);
  return ip === 4 || isHostName(plain!) ? { host: plain!, ip } : undefined;
}

/** Whether `address` is host:port (see hostOf). */
export function isHostPort(address: string): boolean {
  return hostOf(address) !== undefined;
}

/**
 * Whether `target` is a gRPC target grpc-js connects to: host:port, or with
 * a resolver scheme, `dns:[//authority/]host:port`, `ipv4:`/`ipv6:` and
 * host:port entries of those IP versions separated by commas, or `unix:` and
 * a socket path.
 */
export function isGrpcTarget(target: string): boolean {
  const scheme = /^(dns|ipv4|ipv6|unix|unix-abstract):/.exec(target)?.[1];
  const rest = scheme === undefined ? target : target.slice(scheme.length + 1);
  switch (scheme) {
    case undefined:
      return isHostPort(target);
    case "dns":
      return isHostPort(rest.replace(/^\/\/[^/]*\//, ""));
    case "ipv4":
    case "ipv6":
      return rest.split(",").every((entry) => hostOf(entry)?.ip === (scheme === "ipv4" ? 4 : 6));
    default:
      return rest !== "";
  }
}

const HOST_PORT_FORM = "host:port (a host name or IP address, an IPv6 address in brackets, and a port from 1 to 65535)";

/**
 * Reads a host:port from `name`; when it is unset, 127.0.0.1 and the port in
 * `portName` (the process's own port variable, read only then: a process
 * told the address never trips on a port of 0 it inherited, which asks the
 * other process to pick one).
 */
export function readAddress(env: Env, name: string, portName: string, defaultPort: number, minPort = 1): string {
  const address = readString(env, name, "");
  if (address === "") return `127.0.0.1:${readInt(env, portName, defaultPort, minPort, 65535)}`;
  if (!isHostPort(address)) throw new ConfigError(`${name} must be ${HOST_PORT_FORM}, got "${address}"`);
  return address;
}

/** Reads the address of a gRPC server as readAddress does; besides host:port, a gRPC target with a scheme (isGrpcTarget). */
export function readGrpcAddress(env: Env, name: string, portName: string, defaultPort: number): string {
  const address = readString(env, name, "");
  if (address === "") return readAddress(env, name, portName, defaultPort);
  if (!isGrpcTarget(address)) {
    throw new ConfigError(`${name} must be ${HOST_PORT_FORM}, or a gRPC target (dns:, ipv4:, ipv6:, unix:), got "${address}"`);
  }
  return address;
}

/** Reads an http:// or https:// URL, or undefined when unset or empty. */
export function readHttpUrl(env: Env, name: string): string | undefined {
  const raw = readString(env, name, "");
  if (raw === "") return undefined;
  const url = URL.parse(raw);
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
    throw new ConfigError(`${name} must be an http:// or https:// URL, got "${raw}"`);
  }
  return raw;
}

/** Reads a comma-separated list of some of `choices` (spaces around each ignored); empty when unset or empty. */
export function readChoices<T extends string>(env: Env, name: string, choices: readonly T[]): T[] {
  const entries = readString(env, name, "").split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  const unknown = entries.filter((entry) => !(choices as readonly string[]).includes(entry));
  if (unknown.length > 0) {
    throw new ConfigError(`${name} must be names among ${choices.join(", ")}, separated by commas, got "${unknown.join(",")}"`);
  }
  return entries as T[];
}

/** The text of the file that variable `name` points at (`file`); a file that cannot be read is a ConfigError naming `name`. */
export function readFileOf(name: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    // "ENOENT: no such file or directory, open '/x'": the path is said once, before.
    const reason = error instanceof Error ? error.message.split(", ")[0] : String(error);
    throw new ConfigError(`${name} names a file that cannot be read: ${file} (${reason})`);
  }
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
