import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createInterface } from "node:readline";
import { nodeEntry } from "../../shared/process/index.js";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What the helpers started and has not ended yet (see stopLeftovers). */
const live = new Set<ChildProcess>();

/** A process a helper started, kept track of until it ends. */
export function tracked(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Kills (SIGKILL) what the helpers started that is still running, and returns how many: test/setup.ts does after each
 * test file, as a test that fails by timing out never reaches its `await using` disposal.
 */
export function stopLeftovers(): number {
  let stopped = 0;
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")) stopped++;
  }
  live.clear();
  return stopped;
}

/** A service process started by a test: its port, its log lines, and one way to stop it. */
export interface ServiceProcess extends AsyncDisposable {
  readonly name: string;
  readonly child: ChildProcess;
  /** The port it reported in its "listening" log line. */
  readonly port: number;
  /** The admin port (/metrics, /healthz, /status.json) it reported there, when it has one. */
  readonly adminPort: number | undefined;
  /** Every log line so far (JSON lines from pino, or raw text). */
  readonly logs: string[];
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Sends a signal and waits for the process to end (SIGKILL after timeoutMs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/**
 * Starts `node --import tsx <entry>` (with Orderly's Node.js flags) with the environment given, and waits
 * for its "listening" log line (the port comes from it, so port 0 works).
 */
export async function startService(name: string, entry: string, env: Record<string, string>, timeoutMs = 30_000): Promise<ServiceProcess> {
  const [executable, ...args] = nodeEntry(entry);
  const child = tracked(
    spawn(executable, args, {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const logs: string[] = [];
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
  });
  let adminPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Leave nothing behind: a process that never reported its port is stopped.
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${logs.join("\n")}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      logs.push(line);
      if (!line.includes('"listening"')) return;
      try {
        const parsed = JSON.parse(line) as { msg?: string; port?: number; adminPort?: number };
        if (parsed.msg === "listening" && typeof parsed.port === "number") {
          clearTimeout(timer);
          adminPort = parsed.adminPort;
          resolve(parsed.port);
        }
      } catch {
        // not a JSON line
      }
    };
    createInterface({ input: child.stdout! }).on("line", onLine);
    createInterface({ input: child.stderr! }).on("line", (line) => logs.push(line));
    // Read once its output is closed, so the error has its last lines (why it stopped: a port taken, say).
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const error = new Error(`${name} exited (${code ?? signal ?? "unknown"}) before listening:\n${logs.join("\n")}`);
      reject(Object.assign(error, { portTaken: logs.some((line) => PORT_TAKEN.test(line)) }));
    });
  });
  // Its output read to the end: the lines it wrote last, read after its exit (the pipe is read as it comes).
  const outputRead = once(child.stdout!, "close").then(
    () => undefined,
    () => undefined,
  );
  const stop = async (signal: NodeJS.Signals = "SIGTERM", timeout = 10_000) => {
    await endProcess(child, signal, exited, timeout);
    // What it logged is in `logs` once stopped; bounded, as a process it started may hold the pipe open.
    await Promise.race([outputRead, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    return exited;
  };
  return { name, child, port, adminPort, logs, exited, stop, [Symbol.asyncDispose]: async () => void (await stop()) };
}

/** How a process ends when started with `env`: its exit code and what it wrote to stdout (its log) and stderr. */
export function exitOf(entry: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [node, ...args] = nodeEntry(entry);
  return new Promise((resolve) => {
    tracked(
      execFile(node, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }),
      ),
    );
  });
}

/** The fatal lines of a process's JSON log. */
export function fatalLines(log: string): { msg: string }[] {
  return log
    .split("\n")
    .filter((line) => line.includes('"level":60'))
    .map((line) => JSON.parse(line) as { msg: string });
}

/** How a process says it could not listen: Node's error code, or nats-server's words. */
export const PORT_TAKEN = /EADDRINUSE|address already in use/;

/** Whether a start failed because the process found its port taken (startService and startNats mark it so). */
export function portTaken(error: unknown): boolean {
  return (error as { portTaken?: unknown } | undefined)?.portTaken === true;
}

/**
 * Runs `start`, again while it fails because the port it was given is taken,
 * at most `attempts` times in all, with `beforeRetry` between tries (picking
 * another port, or waiting for this one): a free port is only free until
 * someone binds it, and a restart must keep the port its clients know.
 */
export async function startWhilePortTaken<T>(attempts: number, start: () => Promise<T>, beforeRetry: () => Promise<unknown>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === attempts || !portTaken(error)) throw error;
      await beforeRetry();
    }
  }
}

/** Waits until `condition` returns a truthy value, polling; fails with `message` after timeoutMs. */
/** Sends `signal` to `child` while it runs and waits for `exited`; one that outlives `timeoutMs` after it gets SIGKILL. */
export async function endProcess(child: ChildProcess, signal: NodeJS.Signals, exited: Promise<unknown>, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const stubborn = signal === "SIGKILL" ? undefined : setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await exited;
  clearTimeout(stubborn);
}

export async function waitFor<T>(condition: () => T | Promise<T>, message: string, timeoutMs = 15_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message}${lastError ? `: ${String(lastError)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Whether a process with this pid is still running (a zombie is not). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie has ended: its parent just has not reaped it (an orphan's is PID 1, which in a container may be no init).
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export { once };

/** Runs `services/query/rebuild.ts` (what `npm run rebuild` runs) with `env` over this process's; bounded, so a hang fails. */
export function runRebuild(env: Record<string, string>, args: string[] = []): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, ["--import", "tsx", "services/query/rebuild.ts", ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 60_000 });
}
