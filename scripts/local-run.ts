/**
 * The local supervisor behind `npm start`: starts every process of Orderly
 * (nats-server, inventory, order, query, gateway; each waits for the ones
 * before it to listen), streams their logs with
 * a name prefix, waits until the gateway is ready, seeds a demo catalog into
 * an empty inventory, prints how to try it, starts a process that ends on its
 * own again (on its ports, while it does not keep ending), and on
 * SIGINT/SIGTERM/SIGHUP stops everything in reverse order. Run through
 * scripts/start.mjs.
 *
 * Security is on: before starting, it writes dev credentials into the data
 * directory (link key, token key pair, dev-tokens.json), a NATS config with one
 * user per process (when it starts its own nats-server), and, with
 * ORDERLY_MTLS=1, a dev CA and certificates for mTLS between the processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ConfigError, readChoice, readInt, readLogLevel, readNatsUrl, readQueryConsumerName, readString, type Env } from "../shared/config/index.js";
import { freePort, nodeEntry } from "../shared/process/index.js";
import { secretsDir, type TlsFiles } from "../shared/security/index.js";
import { logLevels, type LogLevel } from "../shared/logging/index.js";
import { keepToOwner, makeOwnersDir } from "../shared/fs/index.js";
import { holdExclusively } from "../shared/sqlite/index.js";
import { groupEnded, signalGroup } from "./process-group.mjs";
import { tlsEnv, writeDevCertificates, writeDevCredentials, writeNatsSecurity, type NatsSecurity, type NatsUser } from "./dev-security.js";

// ---------------------------------------------------------------------------
// Configuration: the only place this script reads the environment.

const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where the local run's own nats-server listens, and how the processes reach it. */
const LOOPBACK = "127.0.0.1";
const READY_LINE_TIMEOUT_MS = 60_000;
const READYZ_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** A process that ends unexpectedly is started again after this wait, doubled for each of its ends in the window. */
const RESTART_DELAY_MS = 1000;
/** How many unexpected ends of one process within RESTART_WINDOW_MS are started again; one more stops the run. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 5 * 60_000;
/** A process that ran this long before it ended was not ending over and over: its earlier ends are forgotten (a rolling restart, say). */
const STABLE_RUN_MS = 60_000;

/** What `npm start` can be told through the environment. */
export interface LocalRunConfig {
  /** The host the supervisor, and the processes, reach each other's ports at: where ORDERLY_BIND_HOST binds them (see reachableHost). */
  host: string;
  gatewayPort: number;
  /** The gateway's admin port: /metrics, /status (the live status page), /status.json. */
  gatewayAdminPort: number;
  orderGrpcPort: number;
  inventoryGrpcPort: number;
  queryGrpcPort: number;
  /** Admin ports (/metrics, /healthz, /status.json) of the services. */
  orderAdminPort: number;
  inventoryAdminPort: number;
  queryAdminPort: number;
  natsPort: number;
  /** An existing NATS server or cluster to use; undefined: start our own nats-server. */
  natsUrl: string | undefined;
  /** The nats-server executable. */
  natsServerBin: string;
  /** Absolute path of the data directory (ORDERLY_DATA_DIR, relative to the repository root). */
  dataDir: string;
  /** Whether to color the output (stdout is a terminal and NO_COLOR is unset). */
  color: boolean;
  /** The processes' log lines: readable and prefixed (pretty, the default on a terminal), or their JSON as it is (json). */
  logFormat: "pretty" | "json";
  /** Whether gRPC links use mTLS with dev certificates (ORDERLY_MTLS=1). */
  mtls: boolean;
  /** What the query service names its consumers after (QUERY_CONSUMER_NAME): its NATS user may use those. */
  queryConsumerName: string;
  /** The least pino level of the lines shown (LOG_LEVEL). */
  logLevel: LogLevel;
}

/** The generated credentials the processes of a local run use. */
export interface LocalSecurity {
  /** NATS users and their config (when the run starts its own nats-server). */
  nats: NatsSecurity | undefined;
  /** Certificate files per process (with mTLS). */
  tls: Record<string, TlsFiles> | undefined;
}

/** Reads the local run's configuration; throws ConfigError on a bad value. */
export function readLocalRunConfig(env: Env, stdoutIsTty: boolean): LocalRunConfig {
  return {
    host: reachableHost(env.ORDERLY_BIND_HOST),
    gatewayPort: readInt(env, "GATEWAY_PORT", 8080, 0, 65535),
    gatewayAdminPort: readInt(env, "GATEWAY_ADMIN_PORT", 9050, 0, 65535),
    orderGrpcPort: readInt(env, "ORDER_GRPC_PORT", 50051, 0, 65535),
    inventoryGrpcPort: readInt(env, "INVENTORY_GRPC_PORT", 50052, 0, 65535),
    queryGrpcPort: readInt(env, "QUERY_GRPC_PORT", 50053, 0, 65535),
    orderAdminPort: readInt(env, "ORDER_ADMIN_PORT", 9051, 0, 65535),
    inventoryAdminPort: readInt(env, "INVENTORY_ADMIN_PORT", 9052, 0, 65535),
    queryAdminPort: readInt(env, "QUERY_ADMIN_PORT", 9053, 0, 65535),
    natsPort: readInt(env, "NATS_PORT", 4222, 1, 65535),
    natsUrl: readNatsUrl(env, "") || undefined,
    // Debian installs it in /usr/sbin, which is not on every PATH.
    natsServerBin: readString(env, "NATS_SERVER_BIN", existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server"),
    dataDir: resolve(ROOT, readString(env, "ORDERLY_DATA_DIR", "./.data")),
    color: stdoutIsTty && (env.NO_COLOR ?? "") === "",
    logFormat: readChoice(env, "LOG_FORMAT", ["pretty", "json"], stdoutIsTty ? "pretty" : "json"),
    mtls: readChoice(env, "ORDERLY_MTLS", ["0", "1"], "0") === "1",
    queryConsumerName: readQueryConsumerName(env),
    logLevel: readLogLevel(env),
  };
}

/**
 * The host to reach a port bound to `bindHost` (ORDERLY_BIND_HOST, which every process listens on) at, in a URL or a
 * host:port: the loopback for none or a wildcard, an IPv6 address in brackets.
 */
export function reachableHost(bindHost: string | undefined): string {
  if (bindHost === undefined || bindHost === "" || bindHost === "0.0.0.0" || bindHost === "::") return LOOPBACK;
  return bindHost.includes(":") ? `[${bindHost}]` : bindHost;
}

// ---------------------------------------------------------------------------
// The processes, in start order (they stop in reverse). To add one, add a row.

/** The ports of the processes started so far, by name (a service's admin port as `${name}-admin`). */
export type Ports = Readonly<Record<string, number>>;

/** One process of the local system: how to start it and how to tell that it listens. */
export interface ProcessSpec {
  /** Short name, used as the log prefix. */
  name: string;
  /** The environment variable that sets its port (named when the port is taken). */
  portEnv: string;
  /** The port it is asked to listen on (0: any free port). */
  port: number;
  /** Its admin server's port and the variable that sets it, when it has one. */
  admin?: { portEnv: string; port: number };
  /** The command line; the first element is the executable. */
  command: readonly string[];
  /** Environment added to the supervisor's own, given the ports of the processes started before it. */
  env: (ports: Ports) => Record<string, string>;
  /** The port it listens on, when this output line says it is ready. */
  readyPort: (line: string) => number | undefined;
  /** The signal that stops it cleanly (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
  /** What to do when it cannot be started at all (e.g. how to install it). */
  installHint?: string;
}

/** The process table of a local run. */
export function processTable(config: LocalRunConfig, security: LocalSecurity = { nats: undefined, tls: undefined }): ProcessSpec[] {
  const natsUrl = (ports: Ports) => config.natsUrl ?? `nats://${addressOf(ports, "nats", LOOPBACK)}`;
  /** A process's credentials: its NATS user, its certificate. */
  const credentials = (name: NatsUser) => ({
    ...security.nats?.envFor(name),
    ...(security.tls?.[name] ? tlsEnv(security.tls[name]) : {}),
  });
  const natsConfig = security.nats ? ["-c", security.nats.configFile] : [];
  const nats: ProcessSpec = {
    name: "nats",
    portEnv: "NATS_PORT",
    port: config.natsPort,
    command: [config.natsServerBin, ...natsConfig, "-js", "-a", LOOPBACK, "-p", String(config.natsPort), "-sd", join(config.dataDir, "nats")],
    env: () => ({}),
    readyPort: (line) => (line.includes("Server is ready") ? config.natsPort : undefined),
    stopSignal: "SIGINT", // nats-server exits 0 on SIGINT, 1 on SIGTERM
    installHint: "Install nats-server (Debian: apt-get install nats-server), set NATS_SERVER_BIN to it, or set NATS_URL to a running server.",
  };
  return [
    ...(config.natsUrl === undefined ? [nats] : []),
    {
      name: "inventory",
      portEnv: "INVENTORY_GRPC_PORT",
      port: config.inventoryGrpcPort,
      admin: { portEnv: "INVENTORY_ADMIN_PORT", port: config.inventoryAdminPort },
      command: nodeEntry("services/inventory/main.ts"),
      env: (ports) => ({
        ...credentials("inventory"),
        INVENTORY_GRPC_PORT: String(config.inventoryGrpcPort),
        INVENTORY_ADMIN_PORT: String(config.inventoryAdminPort),
        // It asks the order service about old reservations, and starts first: the order service's port is set ahead.
        ORDER_ADDRESS: `${config.host}:${config.orderGrpcPort}`,
        NATS_URL: natsUrl(ports),
      }),
      readyPort: pinoListeningPort,
    },
    {
      name: "order",
      portEnv: "ORDER_GRPC_PORT",
      port: config.orderGrpcPort,
      admin: { portEnv: "ORDER_ADMIN_PORT", port: config.orderAdminPort },
      command: nodeEntry("services/order/main.ts"),
      env: (ports) => ({
        ...credentials("order"),
        ORDER_GRPC_PORT: String(config.orderGrpcPort),
        ORDER_ADMIN_PORT: String(config.orderAdminPort),
        INVENTORY_ADDRESS: addressOf(ports, "inventory", config.host),
        NATS_URL: natsUrl(ports),
      }),
      readyPort: pinoListeningPort,
    },
    {
      name: "query",
      portEnv: "QUERY_GRPC_PORT",
      port: config.queryGrpcPort,
      admin: { portEnv: "QUERY_ADMIN_PORT", port: config.queryAdminPort },
      command: nodeEntry("services/query/main.ts"),
      env: (ports) => ({
        ...credentials("query"),
        QUERY_GRPC_PORT: String(config.queryGrpcPort),
        QUERY_ADMIN_PORT: String(config.queryAdminPort),
        NATS_URL: natsUrl(ports),
      }),
      readyPort: pinoListeningPort,
    },
    {
      name: "gateway",
      portEnv: "GATEWAY_PORT",
      port: config.gatewayPort,
      admin: { portEnv: "GATEWAY_ADMIN_PORT", port: config.gatewayAdminPort },
      command: nodeEntry("gateway/main.ts"),
      env: (ports) => ({
        ...credentials("gateway"),
        GATEWAY_PORT: String(config.gatewayPort),
        GATEWAY_ADMIN_PORT: String(config.gatewayAdminPort),
        ORDER_ADDRESS: addressOf(ports, "order", config.host),
        INVENTORY_ADDRESS: addressOf(ports, "inventory", config.host),
        QUERY_ADDRESS: addressOf(ports, "query", config.host),
        ORDER_ADMIN_ADDRESS: addressOf(ports, "order-admin", config.host),
        INVENTORY_ADMIN_ADDRESS: addressOf(ports, "inventory-admin", config.host),
        QUERY_ADMIN_ADDRESS: addressOf(ports, "query-admin", config.host),
        NATS_URL: natsUrl(ports),
      }),
      readyPort: pinoListeningPort,
    },
  ];
}

/** The port of a pino `{"msg":"listening","port":N}` line, or undefined for any other line. */
export function pinoListeningPort(line: string): number | undefined {
  if (!line.includes('"listening"')) return undefined;
  const record = parseJsonObject(line);
  return record?.msg === "listening" && typeof record.port === "number" ? record.port : undefined;
}

/** The admin port a service's "listening" line reports (`adminPort`), if any. */
export function pinoAdminPort(line: string): number | undefined {
  if (!line.includes('"adminPort"')) return undefined;
  const record = parseJsonObject(line);
  return record?.msg === "listening" && typeof record.adminPort === "number" ? record.adminPort : undefined;
}

/** The host:port of a process started earlier, at `host` (a table in the wrong order throws). */
export function addressOf(ports: Ports, name: string, host: string): string {
  const port = ports[name];
  if (port === undefined) throw new Error(`process table: "${name}" must start before the processes that use it`);
  return `${host}:${port}`;
}

// ---------------------------------------------------------------------------
// The demo catalog, seeded over HTTP when the inventory is empty.

/** One SKU of the demo catalog. */
export interface DemoItem {
  sku: string;
  name: string;
  unitPriceMinor: string;
  quantity: number;
}

/** The demo catalog (prices in cents, USD). */
export const DEMO_CATALOG: readonly DemoItem[] = [
  { sku: "MUG-CLASSIC", name: "Classic ceramic mug", unitPriceMinor: "1299", quantity: 120 },
  { sku: "TEE-ORGANIC-M", name: "Organic cotton T-shirt (M)", unitPriceMinor: "2499", quantity: 80 },
  { sku: "BOTTLE-STEEL", name: "Insulated steel bottle 750 ml", unitPriceMinor: "3499", quantity: 60 },
  { sku: "NOTEBOOK-A5", name: "A5 dotted notebook", unitPriceMinor: "899", quantity: 200 },
  { sku: "HEADPHONES-BT", name: "Wireless headphones", unitPriceMinor: "8999", quantity: 25 },
];
const DEMO_CURRENCY = "USD";

// ---------------------------------------------------------------------------
// Output: every line prefixed with a padded (and, on a terminal, colored) name.

const SUPERVISOR = "orderly";
const NAME_COLORS = [36, 35, 32, 33, 34, 96, 95]; // cyan, magenta, green, yellow, blue, …
const LEVELS: Record<number, { name: string; color: number }> = {
  10: { name: "TRACE", color: 90 },
  20: { name: "DEBUG", color: 90 },
  30: { name: "INFO", color: 32 },
  40: { name: "WARN", color: 33 },
  50: { name: "ERROR", color: 31 },
  60: { name: "FATAL", color: 31 },
};
/** A nats-server log line: `[pid] date time [LVL] msg`. */
const NATS_LINE = /^\[\d+\] \d{4}\/\d\d\/\d\d (\d\d:\d\d:\d\d)\.\d+ \[(\w+)\] (.*)$/;
/** nats-server's levels on pino's scale. */
const NATS_LEVELS: Record<string, number> = { TRC: 10, DBG: 20, INF: 30, WRN: 40, ERR: 50, FTL: 60 };
const MAX_VALUE_CHARS = 120;

/** Writes prefixed lines for the supervisor and its processes. */
export interface Output {
  /** Writes one line (or several) under a process's name. */
  line(name: string, text: string, stream?: NodeJS.WritableStream): void;
  /** Writes text as it is, without a prefix (for blocks meant to be copied). */
  plain(text: string): void;
  /** Wraps text in an ANSI style when coloring. */
  style(code: number, text: string): string;
}

/** Creates the output for these process names. */
export function createOutput(names: readonly string[], color: boolean): Output {
  const all = [SUPERVISOR, ...names];
  const width = Math.max(...all.map((n) => n.length));
  const style = (code: number, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const prefixes = new Map(
    all.map((name, i) => [name, style(i === 0 ? 1 : (NAME_COLORS[(i - 1) % NAME_COLORS.length] ?? 0), name.padEnd(width)) + " | "]),
  );
  return {
    line(name, text, stream = process.stdout) {
      const prefix = prefixes.get(name) ?? `${name.padEnd(width)} | `;
      stream.write(text.split("\n").map((l) => prefix + l).join("\n") + "\n");
    },
    plain(text) {
      process.stdout.write(text + "\n");
    },
    style,
  };
}

/**
 * A pino JSON line as `time LEVEL msg key=value…` (an error's stack on following lines), a nats-server line
 * (`[pid] date time [LVL] msg`) as `time LVL msg`; other text unchanged.
 */
export function formatLogLine(line: string, style: (code: number, text: string) => string = (_c, t) => t): string {
  const natsLine = NATS_LINE.exec(line);
  if (natsLine) {
    const [, time = "", level = "", msg = ""] = natsLine;
    const color = level === "INF" ? 32 : level === "WRN" ? 33 : level === "DBG" || level === "TRC" ? 90 : 31;
    return `${style(90, time)} ${style(color, level.padEnd(5))} ${msg}`;
  }
  const record = parseJsonObject(line);
  if (record === undefined || typeof record.level !== "number") return line;
  const { level, time, msg, service: _service, pid: _pid, hostname: _hostname, spanId: _spanId, err, ...fields } = record;
  const levelInfo = LEVELS[level] ?? { name: String(level), color: 0 };
  const parts = [
    typeof time === "string" ? style(90, clockTime(time)) : "",
    style(levelInfo.color, levelInfo.name.padEnd(5)),
    typeof msg === "string" ? msg : "",
  ];
  const error = typeof err === "object" && err !== null ? (err as { message?: unknown; stack?: unknown }) : undefined;
  if (error) parts.push(`err=${valueText(error.message)}`);
  for (const [key, value] of Object.entries(fields)) parts.push(`${style(90, key + "=")}${valueText(value)}`);
  let text = parts.filter((p) => p !== "").join(" ");
  if (error && level >= 50 && typeof error.stack === "string") {
    text += "\n" + error.stack.split("\n").slice(1).map((l) => style(90, "    " + l.trim())).join("\n");
  }
  return text;
}

function valueText(value: unknown): string {
  const text = typeof value === "string" && /^[^\s"=]*$/.test(value) && value !== "" ? value : JSON.stringify(value) ?? String(value);
  return text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS - 1) + "…" : text;
}

function clockTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toTimeString().slice(0, 8);
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Running processes.

/** How a process ended: its exit code, or the signal that ended it. */
type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** A started process. */
interface Running {
  spec: ProcessSpec;
  child: ChildProcess;
  /** Resolves with the port once the process says it listens. */
  ready: Promise<number>;
  /** Resolves when the process has ended (or failed to spawn). */
  exited: Promise<Exit>;
  /** Whether the process has ended. */
  hasExited(): boolean;
  /** Whether it has said it listens. */
  hasReported(): boolean;
  /** When it said it listens (ms since the epoch), once it did. */
  reportedAt(): number | undefined;
  /** The last lines it wrote (for diagnosing a failed start). */
  tail: string[];
  /** The admin port its "listening" line reported, once it did. */
  adminPort(): number | undefined;
}

/** The reason the supervisor stops: a signal, or a failure to report. */
type StopReason = { signal: NodeJS.Signals } | { failure: string };

/** Raised inside the start sequence when a stop was decided meanwhile. */
class StopRequested extends Error {}

/** Starts one process, streaming its output through `out` (readable and prefixed, or its JSON lines as they are). */
function launch(spec: ProcessSpec, env: NodeJS.ProcessEnv, out: Output, shown: Pick<LocalRunConfig, "logFormat" | "logLevel">, onSpawnError: (error: Error) => void): Running {
  const [executable, ...args] = spec.command;
  if (executable === undefined) throw new Error(`process table: "${spec.name}" has an empty command`);
  // Its own process group: a terminal's Ctrl-C does not reach it directly; the supervisor stops the processes in
  // order, and can signal whatever a process started (its group) too.
  const child = spawn(executable, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const tail: string[] = [];
  // The process logs info lines even when LOG_LEVEL asks for fewer (see startAll): those are dropped here.
  const least = logLevels[shown.logLevel];
  const filtered = least > logLevels.info;
  let exited = false;
  let reported: number | undefined;
  let adminPort: number | undefined;
  const exitedPromise = new Promise<Exit>((resolveExit) => {
    // "close", not "exit": by then every line it wrote has been read.
    child.once("close", (code, signal) => {
      exited = true;
      resolveExit({ code, signal });
    });
    child.once("error", (error) => {
      if (child.pid === undefined) {
        exited = true;
        resolveExit({ code: null, signal: null });
      }
      onSpawnError(error);
    });
  });
  const ready = new Promise<number>((resolveReady) => {
    const onLine = (line: string, stream: NodeJS.WritableStream) => {
      tail.push(line);
      if (tail.length > 50) tail.shift();
      if (!(filtered && belowLevel(line, least))) {
        if (shown.logFormat === "pretty" || !line.startsWith("{")) out.line(spec.name, formatLogLine(line, out.style), stream);
        else stream.write(line + "\n");
      }
      adminPort ??= pinoAdminPort(line);
      const port = spec.readyPort(line);
      if (port !== undefined) {
        reported ??= Date.now();
        resolveReady(port);
      }
    };
    createInterface({ input: child.stdout! }).on("line", (line) => onLine(line, process.stdout));
    createInterface({ input: child.stderr! }).on("line", (line) => onLine(line, process.stderr));
  });
  return { spec, child, ready, exited: exitedPromise, hasExited: () => exited, hasReported: () => reported !== undefined, reportedAt: () => reported, tail, adminPort: () => adminPort };
}

/** The reaper (scripts/reaper.mjs): stops what the supervisor started should the supervisor end without stopping it. */
interface Reaper {
  /** Tells it of a process started in a slot of the start order (its process group, and its stop signal). */
  started(proc: Running, slot: number): void;
  /** Tells it a process has ended (its group is not to be signalled: the id may be another's by then). */
  ended(proc: Running): void;
  /** Tells it the supervisor has stopped everything itself; resolves once it has exited (bounded). */
  done(): Promise<void>;
}

/**
 * Starts the reaper, in a session of its own: each process the supervisor starts leads a process group of its own
 * (see launch), so nothing else stops them when the supervisor is killed outright (SIGKILL, the OOM killer) or
 * crashes; they went on holding their ports and the data directory. It learns of each on its stdin, and stops them
 * all when that ends without "done".
 */
function startReaper(): Reaper {
  const reaper = spawn(process.execPath, [join(ROOT, "scripts", "reaper.mjs"), String(STOP_TIMEOUT_MS)], { cwd: ROOT, stdio: ["pipe", "ignore", "ignore"], detached: true });
  const input = reaper.stdin!;
  // A reaper gone (killed by hand) must not end the supervisor with the write's EPIPE; one that could not start leaves
  // the supervisor as it was without one (it still stops everything itself).
  input.on("error", () => undefined);
  reaper.on("error", () => undefined);
  const exited = new Promise<void>((resolveExit) => reaper.once("exit", () => resolveExit()));
  return {
    started: (proc, slot) => {
      if (proc.child.pid !== undefined) input.write(`${proc.child.pid} ${proc.spec.stopSignal ?? "SIGTERM"} ${slot}\n`);
    },
    ended: (proc) => {
      if (proc.child.pid !== undefined) input.write(`${proc.child.pid} ended\n`);
    },
    done: async () => {
      input.end("done\n");
      await Promise.race([exited, new Promise((resolveLater) => setTimeout(resolveLater, 2000).unref())]);
    },
  };
}

/**
 * Whether a line is a pino record or a nats-server line of a level below `least` (on pino's scale); a line
 * whose level cannot be told is not.
 */
export function belowLevel(line: string, least: number): boolean {
  const natsLevel = NATS_LINE.exec(line)?.[2];
  const level = natsLevel !== undefined ? NATS_LEVELS[natsLevel] : parseJsonObject(line)?.level;
  return typeof level === "number" && level < least;
}

/** Sends a signal (0: none, just a check) to the process group a process leads; false when no process of it is left. */
function signalRunning(running: Running, signal: NodeJS.Signals | 0): boolean {
  return running.child.pid !== undefined && signalGroup(running.child.pid, signal);
}

/** Waits until no process of a process's group is left (its helpers, e.g. tsx's esbuild); false on timeout. */
async function runningEnded(running: Running, timeoutMs = 2000): Promise<boolean> {
  return running.child.pid === undefined || groupEnded(running.child.pid, timeoutMs);
}

/** Why a process ended before the supervisor asked it to, in words a person can act on. */
function unexpectedExitMessage(running: Running, exit: Exit, wasReady: boolean): string {
  const { name, admin } = running.spec;
  // Exit code 0: it stopped as if asked (a kill -TERM by hand, say), but npm start did not ask it.
  const how = exit.signal ? `killed by ${exit.signal}` : exit.code === 0 ? "exit code 0, though npm start did not stop it" : `exit code ${exit.code}; see its log above`;
  const inUse = running.tail.find((line) => /EADDRINUSE|address already in use/.test(line));
  if (inUse !== undefined) {
    // Its admin port, when the line names that one; otherwise the port it serves on.
    const { port, portEnv } = admin !== undefined && admin.port !== 0 && new RegExp(`:${admin.port}\\b`).test(inUse) ? admin : running.spec;
    // The process said the port lies in the kernel's range for outgoing connections (listenRefusal): any connection may hold it.
    const outgoing = /outgoing connection/.test(inUse)
      ? `It lies in this machine's range of ports for outgoing connections, so a connection of any process may hold it: keep them off it by adding ${port} to net.ipv4.ip_local_reserved_ports (keep what  cat /proc/sys/net/ipv4/ip_local_reserved_ports  lists, comma-separated:  sudo sysctl -w net.ipv4.ip_local_reserved_ports=<that>,${port}).\n`
      : "";
    return (
      `${name} could not listen on port ${port}: it is already in use (is another Orderly still running?).\n` +
      outgoing +
      `Set ${portEnv} to a free port, e.g.  ${portEnv}=${port + 100} npm start`
    );
  }
  return wasReady ? `${name} exited unexpectedly (${how}).` : `${name} exited before it was ready (${how}).`;
}

/**
 * What to do when a process has ended unexpectedly at `now`, given the times of its earlier unexpected ends and when
 * it last said it listens: start it again after a wait that doubles with each end within RESTART_WINDOW_MS, or, past
 * MAX_RESTARTS of them, give up (it keeps ending: a crash at start, a port taken for good). A process that had run
 * STABLE_RUN_MS was not ending over and over: its earlier ends are forgotten. Returns the times to remember with it.
 */
export function restartPlan(earlier: readonly number[], now: number, listeningSince?: number): { ends: number[] } & ({ delayMs: number } | { giveUp: true }) {
  const stable = listeningSince !== undefined && now - listeningSince >= STABLE_RUN_MS;
  const ends = [...(stable ? [] : earlier.filter((time) => now - time < RESTART_WINDOW_MS)), now];
  if (ends.length > MAX_RESTARTS) return { ends, giveUp: true };
  return { ends, delayMs: RESTART_DELAY_MS * 2 ** (ends.length - 1) };
}

/** Polls the gateway's /readyz until it answers 200. */
async function waitForReadyz(baseUrl: string, stopped: () => boolean): Promise<void> {
  const deadline = Date.now() + READYZ_TIMEOUT_MS;
  let last = "no answer";
  while (!stopped()) {
    try {
      const response = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
      last = `HTTP ${response.status} ${await response.text()}`;
      if (response.status === 200) return;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) throw new Error(`the gateway was not ready within ${READYZ_TIMEOUT_MS / 1000} s (/readyz: ${last})`);
    await new Promise((resolveDelay) => setTimeout(resolveDelay, 100));
  }
}

/** Calls the gateway with a JSON body; throws on a non-2xx answer. */
async function callGateway(baseUrl: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const response = await fetch(baseUrl + path, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered HTTP ${response.status}: ${text}`);
  return text === "" ? undefined : (JSON.parse(text) as unknown);
}

/** Seeds the demo catalog (as the admin) when the inventory is empty; returns whether it did. */
export async function seedDemoCatalogIfEmpty(baseUrl: string, adminToken: string): Promise<boolean> {
  const admin = { authorization: `Bearer ${adminToken}` };
  const list = (await callGateway(baseUrl, "GET", "/v1/inventory", undefined, admin)) as { items?: unknown[] } | undefined;
  if ((list?.items?.length ?? 0) > 0) return false;
  for (const item of DEMO_CATALOG) {
    await callGateway(
      baseUrl,
      "POST",
      `/v1/inventory/${item.sku}:restock`,
      { quantity: item.quantity, name: item.name, unitPriceMinor: item.unitPriceMinor, currencyCode: DEMO_CURRENCY },
      { ...admin, "Idempotency-Key": `demo-seed-${item.sku}` },
    );
  }
  return true;
}

/** The block printed once the system is ready: the URL and commands to paste. */
export function readyBanner(baseUrl: string, adminUrl: string, dataDir: string, style: Output["style"]): string {
  const sku = DEMO_CATALOG[0]?.sku ?? "MUG-CLASSIC";
  const json = "-H 'content-type: application/json'";
  const comment = (text: string) => style(90, `  # ${text}`);
  const tokensFile = join(dataDir, "dev-tokens.json");
  const token = (path: string) => `"Authorization: Bearer $(node -p "require('${tokensFile}').${path}")"`;
  return [
    "",
    `  ${style(1, "Orderly is running at")} ${style(4, baseUrl)}`,
    `  data: ${dataDir}    OpenAPI: ${baseUrl}/openapi.json`,
    `  ${style(1, "live status:")} ${style(4, `${adminUrl}/status`)}    metrics: ${adminUrl}/metrics (each process's: ${adminUrl}/status.json)`,
    `  dev tokens (an admin; customers alice and bob): ${tokensFile}`,
    "",
    comment("keep the Authorization headers of the admin and of two customers"),
    `  ADMIN=${token("admin")}`,
    `  ALICE=${token("customers.alice")}`,
    `  BOB=${token("customers.bob")}`,
    comment("list the inventory"),
    `  curl -sS -w '\\n' -H "$ALICE" ${baseUrl}/v1/inventory`,
    comment("restock a SKU, as the admin (a new SKU also takes name, unitPriceMinor, currencyCode)"),
    `  curl -sS -w '\\n' -H "$ADMIN" -X POST ${baseUrl}/v1/inventory/${sku}:restock ${json} -d '{"quantity": 10}'`,
    comment("place an order as alice (the same Idempotency-Key again returns the same order) and keep its id"),
    `  ORDER=$(curl -sS -H "$ALICE" -X POST ${baseUrl}/v1/orders ${json} -H "Idempotency-Key: demo-$(node -p 'crypto.randomUUID()')" -d '{"customerId": "alice", "items": [{"sku": "${sku}", "quantity": 2}]}'); echo "$ORDER"`,
    `  ORDER_ID=$(node -pe 'JSON.parse(process.argv[1]).id' "$ORDER")`,
    comment("get the order (bob gets 404 for it)"),
    `  curl -sS -w '\\n' -H "$ALICE" ${baseUrl}/v1/orders/\${ORDER_ID}`,
    comment("list alice's orders"),
    `  curl -sS -w '\\n' -H "$ALICE" ${baseUrl}/v1/customers/alice/orders`,
    comment("cancel the order (its stock is released)"),
    `  curl -sS -w '\\n' -H "$ALICE" -X POST ${baseUrl}/v1/orders/\${ORDER_ID}:cancel`,
    "",
    `  ${style(1, "Press Ctrl-C to stop.")}`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------
// The supervisor.

/** Runs the local system until a signal or a failure; resolves with the exit code. */
export async function runLocal(env: Env): Promise<number> {
  let config: LocalRunConfig;
  try {
    config = readLocalRunConfig(env, process.stdout.isTTY === true);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  let security: LocalSecurity;
  let adminToken: string;
  let dataDirLock: { close(): unknown } | undefined;
  try {
    // A data directory made here is the owner's alone (one that exists is the user's choice, left as it is); so is the
    // NATS store in it (every event; nats-server would make it 0750), also one an older Orderly made.
    makeOwnersDir(join(config.dataDir, "nats"));
    keepToOwner(join(config.dataDir, "nats"));
    // Two runs on one data directory would share its databases and nats-server store (whatever their ports), and corrupt both.
    dataDirLock = holdExclusively(join(config.dataDir, "local-run.lock"));
    if (dataDirLock === undefined) {
      process.stderr.write(`${config.dataDir} is in use by another npm start: stop it first, or give this one its own ORDERLY_DATA_DIR\n`);
      return 1;
    }
    adminToken = (await writeDevCredentials(config.dataDir)).admin;
    security = {
      nats: config.natsUrl === undefined ? writeNatsSecurity(config.dataDir, config.queryConsumerName) : undefined,
      tls: config.mtls ? writeDevCertificates(join(secretsDir(config.dataDir), "tls")) : undefined,
    };
  } catch (error) {
    process.stderr.write(`could not prepare the data directory (its lock and dev credentials): ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  // 0 asks for a free port; the order service's must be known before the inventory starts.
  if (config.orderGrpcPort === 0) config = { ...config, orderGrpcPort: await freePort() };
  const table = processTable(config, security);
  const out = createOutput(
    table.map((spec) => spec.name),
    config.color,
  );
  const say = (text: string) => out.line(SUPERVISOR, text);
  const running: Running[] = [];
  const reaper = startReaper();

  let stopReason: StopReason | undefined;
  let stopStartedAt = 0;
  let decide!: (reason: StopReason) => void;
  const decided = new Promise<StopReason>((resolveDecided) => {
    decide = (reason) => {
      if (stopReason !== undefined) return;
      stopReason = reason;
      stopStartedAt = Date.now();
      resolveDecided(reason);
    };
  });
  /** Waits for a step of the start sequence, or gives up when a stop was decided meanwhile. */
  const unlessStopped = <T>(step: Promise<T>): Promise<T> =>
    Promise.race([step, decided.then(() => Promise.reject(new StopRequested()))]);

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopReason === undefined) {
      say(`${signal} received: stopping`);
      decide({ signal });
    } else if (Date.now() - stopStartedAt > 1000) {
      // One Ctrl-C arrives here more than once (npm and start.mjs both pass it on): only a later one is news.
      say(`${signal} received: still stopping (a process that does not stop gets SIGKILL after ${STOP_TIMEOUT_MS / 1000} s)`);
    }
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
  // Output that can no longer be written (`npm start | tee run.log`, whose tee the same Ctrl-C ends; a closed terminal)
  // is dropped: the write's EPIPE or EIO, unhandled, ended the supervisor before it stopped what it started, and left
  // nats-server and every service running, each in its own process group.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);

  const ports: Record<string, number> = {};
  /** Whether the system has been up (its banner printed): from then on a process that ends is started again. */
  let started = false;
  /** Times of each process's unexpected ends (see restartPlan). */
  const ends = new Map<string, number[]>();
  /** The slots whose process ended on its own and waits to be started again (a stop then finds it ended, not unclean). */
  const awaitingRestart = new Set<number>();

  /** Starts the process of `slot` in `running`, and sees to it when it ends before a stop was decided. */
  const start = (slot: number, spec: ProcessSpec, env: NodeJS.ProcessEnv): Running => {
    const proc = launch(spec, env, out, config, (error) =>
      decide({ failure: `could not start ${spec.name} (${spec.command[0]}): ${error.message}${spec.installHint ? `\n${spec.installHint}` : ""}` }),
    );
    running[slot] = proc;
    awaitingRestart.delete(slot);
    reaper.started(proc, slot);
    say(`starting ${spec.name} (pid ${proc.child.pid ?? "?"})`);
    void proc.exited.then((exit) => {
      if (stopReason === undefined) void restartOrStop(slot, proc, env, exit);
    });
    return proc;
  };

  /**
   * The port a process reports it listens on; a failure once READY_LINE_TIMEOUT_MS has passed without it, or when it
   * ends first (which its exit handler in `start` sees to).
   */
  const listening = (proc: Running): Promise<number> => {
    const timeout = new Promise<never>((_resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${proc.spec.name} did not report that it listens within ${READY_LINE_TIMEOUT_MS / 1000} s`)),
        READY_LINE_TIMEOUT_MS,
      );
      void proc.ready.finally(() => clearTimeout(timer));
      void proc.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${proc.spec.name} ended before it said it listens`));
      });
      void decided.finally(() => clearTimeout(timer));
    });
    return unlessStopped(Promise.race([proc.ready, timeout]));
  };

  /**
   * A process ended without being asked to. Before the system was first up that stops the run (it could not start:
   * a port taken, a bad setting); after, it is started again, as a process manager would, on the ports it had (the
   * others reach it there), after a wait that grows while it keeps ending, until restartPlan gives up.
   */
  const restartOrStop = async (slot: number, proc: Running, env: NodeJS.ProcessEnv, exit: Exit) => {
    const { name } = proc.spec;
    const message = unexpectedExitMessage(proc, exit, proc.hasReported());
    if (!started) {
      decide({ failure: message });
      return;
    }
    reaper.ended(proc);
    const plan = restartPlan(ends.get(name) ?? [], Date.now(), proc.reportedAt());
    ends.set(name, plan.ends);
    if ("giveUp" in plan) {
      decide({ failure: `${message}\n${name} ended ${plan.ends.length} times within ${RESTART_WINDOW_MS / 60_000} minutes: stopping everything` });
      return;
    }
    awaitingRestart.add(slot);
    out.line(SUPERVISOR, out.style(33, `${message}${message.includes("\n") ? "\n" : " "}Starting it again in ${plan.delayMs / 1000} s.`), process.stderr);
    // What it started may outlive it (tsx's esbuild): gone before it starts again.
    if (!(await runningEnded(proc))) signalRunning(proc, "SIGKILL");
    await Promise.race([new Promise((resolveDelay) => setTimeout(resolveDelay, plan.delayMs)), decided]);
    if (stopReason !== undefined) return;
    // On the ports it had (also one first picked free: the others reach it there), which a port taken since is named by.
    const { admin } = proc.spec;
    const spec = { ...proc.spec, port: ports[name] ?? proc.spec.port, admin: admin && { ...admin, port: ports[`${name}-admin`] ?? admin.port } };
    const pinned = { [spec.portEnv]: String(spec.port), ...(spec.admin ? { [spec.admin.portEnv]: String(spec.admin.port) } : {}) };
    const again = start(slot, spec, { ...env, ...pinned });
    try {
      await listening(again);
      say(`${name} is running again (pid ${again.child.pid ?? "?"})`);
    } catch (error) {
      if (!(error instanceof StopRequested) && !again.hasExited()) decide({ failure: error instanceof Error ? error.message : String(error) });
    }
  };

  const startAll = async () => {
    say(`data directory: ${config.dataDir}`);
    // A process says it listens in an info line, which the supervisor waits for: it logs info at least (launch drops
    // the lines below LOG_LEVEL).
    const logLevel = logLevels[config.logLevel] > logLevels.info ? "info" : config.logLevel;
    for (const spec of table) {
      if (stopReason !== undefined) return;
      const proc = start(running.length, spec, { ...process.env, ORDERLY_DATA_DIR: config.dataDir, LOG_LEVEL: logLevel, ...spec.env(ports) });
      ports[spec.name] = await listening(proc);
      const adminPort = proc.adminPort();
      if (adminPort !== undefined) ports[`${spec.name}-admin`] = adminPort;
    }
    const gatewayPort = ports.gateway;
    const gatewayAdminPort = ports["gateway-admin"];
    if (gatewayPort === undefined || gatewayAdminPort === undefined) throw new Error('process table: there is no "gateway" reporting its admin port');
    const baseUrl = `http://${config.host}:${gatewayPort}`;
    const adminUrl = `http://${config.host}:${gatewayAdminPort}`;
    await unlessStopped(waitForReadyz(baseUrl, () => stopReason !== undefined));
    const seeded = await unlessStopped(seedDemoCatalogIfEmpty(baseUrl, adminToken));
    say(
      seeded
        ? `inventory was empty: seeded the demo catalog (${DEMO_CATALOG.length} SKUs)`
        : "inventory already has items: keeping them (no demo seed)",
    );
    out.plain(readyBanner(baseUrl, adminUrl, config.dataDir, out.style));
    started = true;
  };
  startAll().catch((error: unknown) => {
    if (error instanceof StopRequested) return;
    decide({ failure: error instanceof Error ? error.message : String(error) });
  });

  const reason = await decided;
  if ("failure" in reason) out.line(SUPERVISOR, out.style(31, `✖ ${reason.failure}`), process.stderr);
  const clean = await stopAll(running, say, (slot) => awaitingRestart.has(slot));
  await reaper.done();
  dataDirLock?.close();
  if ("failure" in reason) {
    say("stopped after a failure");
    return 1;
  }
  say(clean ? "stopped; nothing left running" : "stopped, but not every process exited cleanly");
  return clean ? 0 : 1;
}

/**
 * Stops the processes in reverse start order (their stop signal, then SIGKILL after a timeout); returns whether all
 * exited 0, but for those that had ended on their own before and were waiting to be started again (`awaiting`).
 */
async function stopAll(running: readonly Running[], say: (text: string) => void, awaiting: (slot: number) => boolean): Promise<boolean> {
  let clean = true;
  for (const [slot, proc] of [...running.entries()].reverse()) {
    const { name } = proc.spec;
    if (!proc.hasExited()) {
      say(`stopping ${name}`);
      signalRunning(proc, proc.spec.stopSignal ?? "SIGTERM");
      const timer = setTimeout(() => {
        say(`${name} did not stop within ${STOP_TIMEOUT_MS / 1000} s: killing it`);
        signalRunning(proc, "SIGKILL");
      }, STOP_TIMEOUT_MS);
      const exit = await proc.exited;
      clearTimeout(timer);
      if (exit.code !== 0) say(`${name} ended with ${exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`}`);
    }
    if ((await proc.exited).code !== 0 && !awaiting(slot)) clean = false;
    if (!(await runningEnded(proc))) {
      say(`${name} left processes behind: killing them`);
      signalRunning(proc, "SIGKILL");
      if (!(await runningEnded(proc))) say(`some processes of ${name} (process group ${proc.child.pid}) are still running`);
      clean = false;
    }
  }
  return clean;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runLocal(process.env).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`local run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
