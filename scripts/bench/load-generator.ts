import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { LoadJob, LoadResult } from "./loader-process.js";

const LOADER = fileURLToPath(new URL("./loader-process.ts", import.meta.url));

/** The load-generator child process, driven over IPC; one job at a time. */
export interface LoadGenerator extends AsyncDisposable {
  readonly pid: number;
  /** Runs a job in the child and returns what it measured (rejects after timeoutMs). */
  run<K extends LoadJob["kind"]>(job: Extract<LoadJob, { kind: K }>, timeoutMs?: number): Promise<Extract<LoadResult, { kind: K }>>;
}

/** Forks scripts/bench/loader-process.ts and waits until it is ready. */
export async function startLoadGenerator(): Promise<LoadGenerator> {
  const child: ChildProcess = fork(LOADER, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error("the load generator exited"));
    }
    pending.clear();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the load generator did not start within 30 s")), 30_000);
    child.once("error", reject);
    void exited.then(() => reject(new Error("the load generator exited before it was ready")));
    child.on("message", (message: { ready?: boolean; id?: number; result?: LoadResult; error?: string }) => {
      if (message.ready) {
        clearTimeout(timer);
        resolve();
        return;
      }
      const entry = message.id === undefined ? undefined : pending.get(message.id);
      if (!entry) return;
      pending.delete(message.id!);
      clearTimeout(entry.timer);
      if (message.error !== undefined) entry.reject(new Error(`load generator: ${message.error}`));
      else entry.resolve(message.result!);
    });
  });
  return {
    pid: child.pid!,
    run(job, timeoutMs = 120_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`load job ${job.kind} did not finish within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve: resolve as (r: LoadResult) => void, reject, timer });
        child.send({ id, job });
      });
    },
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
