import { readdirSync, readFileSync } from "node:fs";

/**
 * Everything the bench started, stopped in reverse order exactly once: at
 * the end of `await using`, on a failure, or on SIGINT/SIGTERM/SIGHUP (then
 * `afterSignal` runs, e.g. to exit). As a last resort it also stops any
 * direct child process still running (by pid: only processes this bench started).
 */
export class Cleanup implements AsyncDisposable {
  private readonly stack: { name: string; stop: () => Promise<void> }[] = [];
  private disposing: Promise<void> | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping everything the bench started…`);
    void this[Symbol.asyncDispose]().finally(() => this.afterSignal(signal));
  };

  constructor(private readonly afterSignal: (signal: NodeJS.Signals) => void) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, this.onSignal);
  }

  /** Registers a resource; it is disposed before everything registered earlier. */
  use<T extends AsyncDisposable>(name: string, resource: T): T {
    this.stack.push({ name, stop: async () => void (await resource[Symbol.asyncDispose]()) });
    return resource;
  }

  /** Registers a clean-up step. */
  defer(name: string, stop: () => Promise<void> | void): void {
    this.stack.push({ name, stop: async () => stop() });
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.disposing ??= (async () => {
      while (this.stack.length > 0) {
        const { name, stop } = this.stack.pop()!;
        try {
          await stop();
        } catch (error) {
          console.error(`cleanup of ${name} failed:`, error);
        }
      }
      await stopChildren(process.pid);
      for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(signal, this.onSignal);
    })();
    return this.disposing;
  }
}

/** The pids of the running direct children of `parent` (from /proc). */
export function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start after the last ")": state, ppid, …
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === parent && fields[0] !== "Z") pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = readFileSync(`/proc/${pid}/stat`, "utf8");
    return state.slice(state.lastIndexOf(")") + 2, state.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** SIGTERM to each direct child still running, SIGKILL to those alive 5 s later. */
async function stopChildren(parent: number): Promise<void> {
  const pids = childPids(parent);
  if (pids.length === 0) return;
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && pids.some(alive)) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
