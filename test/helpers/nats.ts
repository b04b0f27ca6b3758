import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { freePort } from "../../shared/process/index.js";
import { ensureStreams } from "../../shared/events/stream-setup.js";
import { natsInboxPrefix } from "../../shared/events/nats-connection.js";
import { PORT_TAKEN, endProcess, startWhilePortTaken, tracked, waitFor } from "./processes.js";

export { freePort } from "../../shared/process/index.js";

/** The nats-server binary: $NATS_SERVER_BIN, else Debian's /usr/sbin/nats-server (not on every PATH), else PATH. */
export function natsServerBinary(): string {
  return process.env.NATS_SERVER_BIN ?? (existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server");
}

/** A real nats-server with JetStream, on its own port and store directory. */
export interface NatsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** How a test connects (with the operator's credentials when the server requires users). */
  readonly connectOptions: { servers: string; user?: string; pass?: string };
  readonly logs: string[];
  child(): ChildProcess;
  /** Kills the server (SIGKILL by default; after 10 s, whatever the signal) and waits for it to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and store. */
  restart(): Promise<void>;
}

/** A server's place in a JetStream cluster: its name, the port its routes listen on, and every member's route URL. */
export interface ClusterMember {
  cluster: string;
  server: string;
  routePort: number;
  routes: readonly string[];
}

/**
 * Starts `nats-server -js` (from PATH) on a free port with a temp store;
 * `await using` stops it and deletes the store. With `configFile`, the server
 * also reads it (users and permissions), and `operator` is who tests log in as;
 * with `member`, it joins a cluster (see startNatsCluster).
 */
export async function startNats(options: { configFile?: string; operator?: { user: string; pass: string }; member?: ClusterMember } = {}): Promise<NatsServer> {
  let port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "orderly-nats-"));
  const logs: string[] = [];
  let child: ChildProcess;
  let exited: Promise<void> = Promise.resolve();

  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const config = options.configFile === undefined ? [] : ["-c", options.configFile];
      const { member } = options;
      const cluster =
        member === undefined
          ? []
          : ["-n", member.server, "--cluster_name", member.cluster, "--cluster", `nats://127.0.0.1:${member.routePort}`, "--routes", member.routes.join(",")];
      child = tracked(spawn(natsServerBinary(), [...config, ...cluster, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], { stdio: ["ignore", "pipe", "pipe"] }));
      const from = logs.length;
      // "close", not "exit": by then its last lines (why it stopped) have been read.
      exited = new Promise((done) => child.once("close", () => done()));
      const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${logs.join("\n")}`)), 20_000);
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(new Error(`cannot run nats-server (install it: apt-get install -y nats-server): ${error.message}`));
      });
      const onLine = (line: string) => {
        logs.push(line);
        if (line.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      };
      createInterface({ input: child.stdout! }).on("line", onLine);
      createInterface({ input: child.stderr! }).on("line", onLine);
      void exited.then(() => {
        clearTimeout(timer);
        const portTaken = logs.slice(from).some((line) => PORT_TAKEN.test(line));
        reject(Object.assign(new Error(`nats-server exited:\n${logs.join("\n")}`), { portTaken }));
      });
    });

  // A server that ignores a gentler signal (one reloaded into a configuration without JetStream, say) gets SIGKILL after 10 s.
  const kill = (signal: NodeJS.Signals = "SIGKILL") => endProcess(child, signal, exited);
  // Another test's process can take the free port before nats-server does: then another one.
  await startWhilePortTaken(5, launch, async () => (port = await freePort()));
  /** Again on the same port (its clients reconnect there): a short-lived taker (an outgoing connection's local port, say) is waited out. */
  const restart = () => startWhilePortTaken(20, launch, () => delay(250));
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    connectOptions: { servers: `nats://127.0.0.1:${port}`, ...options.operator },
    logs,
    child: () => child,
    kill,
    restart,
    async [Symbol.asyncDispose]() {
      await kill("SIGTERM");
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * A nats-server whose `user` (password `pass`) may publish anything but subscribe to nothing, as a NATS user whose
 * permissions lack its inbox; `allowInbox()` lets it subscribe to its inbox (`_INBOX_<user>.>`) by a reload of the
 * configuration (SIGHUP), its clients staying connected. The configuration file is written under `dir`.
 */
export async function startNatsDenyingInbox(dir: string, user: string, pass: string): Promise<NatsServer & { allowInbox(): void }> {
  const file = join(dir, "nats.conf");
  const config = (subscribe: string) =>
    `authorization { users = [ { user: operator, password: op-secret }, { user: ${user}, password: ${pass}, permissions: { publish: ">", subscribe: ${subscribe} } } ] }\n`;
  writeFileSync(file, config(`{ deny: ">" }`));
  const nats = await startNats({ configFile: file, operator: { user: "operator", pass: "op-secret" } });
  return Object.assign(nats, {
    allowInbox() {
      // A reloaded configuration without a jetstream block would turn JetStream off: the command line's -js is not kept.
      writeFileSync(file, `${config(`{ allow: "${natsInboxPrefix(user)}.>" }`)}jetstream { store_dir: "${nats.storeDir}" }\n`);
      nats.child().kill("SIGHUP");
    },
  });
}

/** Real nats-servers clustered with JetStream on free ports, each with its own store. */
export interface NatsCluster extends AsyncDisposable {
  readonly servers: readonly NatsServer[];
  /** Every server's URL, separated by commas, as NATS_URL takes them. */
  readonly url: string;
  /** How a test connects: to any of its servers that answers. */
  readonly connectOptions: { servers: string[]; user?: string; pass?: string };
}

/**
 * Starts `size` nats-servers as one JetStream cluster (each its own store, routes to all) and
 * waits until they have chosen a metadata leader, so streams can be made; `await using` stops
 * them all and deletes their stores.
 */
export async function startNatsCluster(size: number, options: { configFile?: string; operator?: { user: string; pass: string } } = {}): Promise<NatsCluster> {
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = routePorts.map((port) => `nats://127.0.0.1:${port}`);
  const starts = await Promise.allSettled(
    routePorts.map((routePort, i) => startNats({ ...options, member: { cluster: "orderly-test", server: `nats-${i + 1}`, routePort, routes } })),
  );
  const servers = starts.flatMap((start) => (start.status === "fulfilled" ? [start.value] : []));
  const stopAll = async () => void (await Promise.all(servers.map((server) => server[Symbol.asyncDispose]())));
  try {
    const failed = starts.find((start) => start.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const url = servers.map((server) => server.url).join(",");
    const connectOptions = { servers: servers.map((server) => server.url), ...options.operator };
    const nc = await connect(connectOptions);
    try {
      // JetStream answers once the servers have chosen a metadata leader.
      const jsm = await nc.jetstreamManager({ checkAPI: false });
      await waitFor(() => jsm.getAccountInfo().then(() => true), "the cluster's JetStream metadata leader", 20_000);
    } finally {
      await nc.close();
    }
    return { servers, url, connectOptions, [Symbol.asyncDispose]: stopAll };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** A connection to a test server on which Orderly's streams exist; `await using` closes it. */
export async function connectWithStreams(server: NatsServer): Promise<{ nc: NatsConnection; jsm: JetStreamManager } & AsyncDisposable> {
  const nc = await connect(server.connectOptions);
  const jsm = await nc.jetstreamManager();
  await ensureStreams(jsm);
  return { nc, jsm, [Symbol.asyncDispose]: () => nc.close() };
}
