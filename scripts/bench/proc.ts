import { readFileSync } from "node:fs";

/** A process watched by the bench; `pid` is asked each time, so a restarted service is followed. */
export interface Watched {
  name: string;
  pid: () => number | undefined;
}

/** Resident set size of a process in MB, from /proc/<pid>/status (undefined when it is gone). */
export function rssMb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state(0) ppid … utime(11) stime(12), in USER_HZ (100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** When a process started (epoch ms, to the clock tick), from /proc/<pid>/stat and the boot time in /proc/stat; undefined when it is gone. */
export function processStartMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // After the command: state(0) … starttime(19), in clock ticks since boot (USER_HZ, 100 on Linux).
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const bootS = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(bootS) ? bootS * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU used by each watched process between `start()` and `stop()` (ms). */
export class CpuMeter {
  private readonly before = new Map<string, { pid: number; ms: number }>();

  constructor(private readonly processes: readonly Watched[]) {}

  start(): void {
    this.before.clear();
    for (const p of this.processes) {
      const pid = p.pid();
      const ms = pid === undefined ? undefined : cpuMs(pid);
      if (pid !== undefined && ms !== undefined) this.before.set(p.name, { pid, ms });
    }
  }

  /** CPU ms used per process since start (processes that restarted in between are left out). */
  stop(): Record<string, number> {
    const used: Record<string, number> = {};
    for (const p of this.processes) {
      const b = this.before.get(p.name);
      if (!b || p.pid() !== b.pid) continue;
      const ms = cpuMs(b.pid);
      if (ms !== undefined) used[p.name] = ms - b.ms;
    }
    return used;
  }
}

/**
 * Waits until a process has been idle (under `maxShare` of one CPU over two
 * windows of `windowMs` in a row), at most `timeoutMs`; says how long it
 * waited (ms) and whether the process did settle.
 */
export async function waitIdle(pid: number, options: { windowMs?: number; maxShare?: number; timeoutMs?: number } = {}): Promise<{ ms: number; idle: boolean }> {
  const { windowMs = 500, maxShare = 0.05, timeoutMs = 30_000 } = options;
  const start = Date.now();
  let quiet = 0;
  let before = cpuMs(pid);
  while (quiet < 2 && Date.now() - start < timeoutMs && before !== undefined) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = cpuMs(pid);
    if (now === undefined) break;
    quiet = now - before <= windowMs * maxShare ? quiet + 1 : 0;
    before = now;
  }
  return { ms: Date.now() - start, idle: quiet >= 2 };
}
