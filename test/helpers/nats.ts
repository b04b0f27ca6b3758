import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { freePort } from "../../shared/process/index.js";
import { ensureStreams } from "../../shared/events/stream-setup.js";
import { PORT_TAKEN, startWhilePortTaken } from "./processes.js";

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
  /** Kills the server (SIGKILL by default) and waits for it to end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and store. */
  restart(): Promise<void>;
}

/**
 * Starts `nats-server -js` (from PATH) on a free port with a temp store;
 * `await using` stops it and deletes the store. With `configFile`, the server
 * also reads it (users and permissions), and `operator` is who tests log in as.
 */
export async function startNats(options: { configFile?: string; operator?: { user: string; pass: string } } = {}): Promise<NatsServer> {
  let port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "orderly-nats-"));
  const logs: string[] = [];
  let child: ChildProcess;
  let exited: Promise<void> = Promise.resolve();

  const launch = () =>
    new Promise<void>((resolve, reject) => {
      const config = options.configFile === undefined ? [] : ["-c", options.configFile];
      child = spawn(natsServerBinary(), [...config, "-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], { stdio: ["ignore", "pipe", "pipe"] });
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

  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
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

/** A connection to a test server on which Orderly's streams exist; `await using` closes it. */
export async function connectWithStreams(server: NatsServer): Promise<{ nc: NatsConnection; jsm: JetStreamManager } & AsyncDisposable> {
  const nc = await connect(server.connectOptions);
  const jsm = await nc.jetstreamManager();
  await ensureStreams(jsm);
  return { nc, jsm, [Symbol.asyncDispose]: () => nc.close() };
}
