import { readdir, readFile } from "node:fs/promises";
import type { Logger } from "../logging/index.js";

/** How often a process counts its open file descriptors. */
export const DESCRIPTOR_CHECK_MS = 5000;

/** The share of the limit from which a process warns that it may run out. */
const HIGH_SHARE = 0.9;
/** The share of the limit below which, once warned, it says it is back. */
const BACK_SHARE = 0.8;

/** What a count of descriptors found: how many are open, or that none was left to count them with. */
export type DescriptorCount = { open: number } | { exhausted: true };

/**
 * The process's open descriptors (Linux: /proc/self/fd, which takes one itself); undefined where the OS does not tell.
 * Read off the event loop: a process with tens of thousands open takes tens of milliseconds to list them.
 */
export async function countOpenDescriptors(): Promise<DescriptorCount | undefined> {
  try {
    // One of them is the directory being read.
    return { open: (await readdir("/proc/self/fd")).length - 1 };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "EMFILE" || code === "ENFILE" ? { exhausted: true } : undefined;
  }
}

/** The process's soft limit of open descriptors (RLIMIT_NOFILE: `ulimit -n`, which may change while it runs); undefined where the OS does not tell, or when unlimited. */
export async function descriptorLimit(): Promise<number | undefined> {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(await readFile("/proc/self/limits", "utf8"));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Watches a process's file descriptors, so that running out of them is said
 * rather than met in silence. A gateway out of descriptors drops every new
 * connection without a word (libuv accepts it and closes it at once, and no
 * error reaches Node), a service's SQLite cannot open what it needs, and
 * prom-client's `process_open_fds` keeps the value it read last (counting
 * them takes a descriptor too). Every DESCRIPTOR_CHECK_MS it counts them
 * against the limit (read again each time, the last one read kept when it
 * cannot be): a warning from 90% of it, an error once none is left, and a
 * line when the process is back below 80% (or, after running out, has some
 * again). It samples: running out between two counts goes unseen. `left()`
 * is a health check: false from 90% of the limit until back below 80%.
 */
export class DescriptorWatch {
  private state: "ok" | "high" | "exhausted" = "ok";
  private limit: number | undefined;
  private counting: Promise<void> | undefined;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly logger: Logger,
    private readonly count: () => Promise<DescriptorCount | undefined> = countOpenDescriptors,
    private readonly readLimit: () => Promise<number | undefined> = descriptorLimit,
    everyMs = DESCRIPTOR_CHECK_MS,
  ) {
    this.timer = setInterval(() => void this.check(), everyMs).unref();
    // A first count at once: it reads the limit while there are descriptors to read it with.
    void this.check();
  }

  /** Whether the process has descriptors to spare: false from 90% of its limit until back below 80%. */
  left(): boolean {
    return this.state === "ok";
  }

  /** Counts them now, and says so when the process crossed a line since the last count; a count under way is the one waited for. */
  check(): Promise<void> {
    this.counting ??= (async () => {
      try {
        const [counted, limit] = await Promise.all([this.count(), this.readLimit()]);
        this.limit = limit ?? this.limit;
        if (counted !== undefined && !this.closed) this.judge(counted, this.limit);
      } finally {
        this.counting = undefined;
      }
    })();
    return this.counting;
  }

  /** Judges a count against the limit (none to judge a number by until one was read; running out needs none). */
  private judge(counted: DescriptorCount, limit: number | undefined): void {
    if ("exhausted" in counted) {
      if (this.state !== "exhausted") {
        this.logger.error({ limit }, "no file descriptor left: new connections are dropped unanswered and files cannot be opened (raise the limit, `ulimit -n`, or find what holds them)");
      }
      this.state = "exhausted";
      return;
    }
    if (limit === undefined) return;
    const { open } = counted;
    // Below the line it warned at, it waits to be well below before it says all is well again.
    if (open < limit * BACK_SHARE || (this.state === "ok" && open < limit * HIGH_SHARE)) {
      if (this.state !== "ok") this.logger.info({ open, limit }, "file descriptors back within the limit");
      this.state = "ok";
      return;
    }
    if (this.state !== "high") {
      const message = this.state === "ok" ? "file descriptors nearly all in use: at the limit, new connections are dropped unanswered" : "file descriptors free again, but nearly all still in use";
      this.logger.warn({ open, limit }, message);
    }
    this.state = "high";
  }

  /** Stops counting (a count under way says nothing more). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
