/**
 * A Node.js program run under `valgrind --tool=callgrind` with
 * instrumentation off until counted: what instructions.ts (one server's
 * request by itself) and service-instructions.ts (one service of a whole
 * stack) share. Counts are the main thread's: with --separate-threads its
 * first dump is `callgrind.out.1-01`, and V8's perf map names the
 * JIT-compiled JavaScript in it (callgrind-functions.ts).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository's root: the program runs there, so paths in its arguments are the repository's, wherever the caller is. */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Throws, naming the install command, unless valgrind's tools and the `extra` commands (Debian packages of the same name) are on PATH. */
export function requireTools(extra: readonly string[] = []): void {
  for (const tool of ["valgrind", "callgrind_control", "callgrind_annotate", ...extra]) {
    try {
      execFileSync("which", [tool], { stdio: "ignore" });
    } catch {
      throw new Error(`${tool} is missing: apt-get install -y ${["valgrind", ...extra].join(" ")}`);
    }
  }
}

/**
 * The directory for a count's files, as an absolute path (the program runs in
 * the repository's root, the caller perhaps elsewhere): `out` (made if
 * missing), else a new one named after what is counted under the system's
 * temporary directory.
 */
export function outputDirectory(out: string | undefined, counted: string): string {
  if (out === undefined) return mkdtempSync(join(tmpdir(), `orderly-instructions-${counted}-`));
  mkdirSync(out, { recursive: true });
  return resolve(out);
}

/** A program under callgrind; disposing it stops it. */
export interface Callgrind extends AsyncDisposable {
  readonly child: ChildProcess;
  /** Resolves with the first line printed after the call that `match` accepts (all go to `out/output.log`); rejects when it exits first or after `timeoutMs`. */
  line(match: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Counts instructions while `during` runs (instrumentation on and zeroed before, dumped and off after). */
  count<T>(during: () => Promise<T>): Promise<T>;
  /** Stops it (SIGTERM; SIGKILL a minute later, as it runs slowly) and keeps V8's perf map in `out`. Safe to repeat. */
  stop(): Promise<void>;
  /** The main thread's instructions per request and the top functions per request, from the dump `count` made. */
  report(requests: number): string;
}

/** Starts `node --perf-basic-prof <args>` under callgrind in the repository's root, its files (dump, perf map, output, valgrind's log) in `out`. */
export function startUnderCallgrind(args: readonly string[], options: { env: NodeJS.ProcessEnv; out: string }): Callgrind {
  const { out } = options;
  const child = spawn(
    "valgrind",
    [
      "--tool=callgrind",
      "--smc-check=all-non-file",
      "--instr-atstart=no",
      "--separate-threads=yes",
      `--callgrind-out-file=${join(out, "callgrind.out")}`,
      process.execPath,
      "--perf-basic-prof",
      ...args,
    ],
    { cwd: ROOT, env: options.env, stdio: ["ignore", "pipe", "pipe"] },
  );
  // valgrind runs node in its own process: V8's perf map is named after valgrind's pid.
  const perfMap = `/tmp/perf-${child.pid}.map`;
  // "close", not "exit": its output pipes are drained by then, so no line comes after the log is closed.
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.stderr!.pipe(createWriteStream(join(out, "valgrind.log")));
  const output = createWriteStream(join(out, "output.log"));
  const lines = createInterface({ input: child.stdout! });
  lines.on("line", (line) => output.write(`${line}\n`));
  const control = (...flags: string[]) => execFileSync("callgrind_control", [...flags, String(child.pid)], { stdio: "ignore" });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      await exited;
      clearTimeout(timer);
    }
    if (existsSync(perfMap)) renameSync(perfMap, join(out, "perf.map"));
    output.end();
  };
  return {
    child,
    line: (match, timeoutMs) =>
      new Promise((resolve, reject) => {
        const onLine = (line: string) => {
          if (!match(line)) return;
          settle();
          resolve(line);
        };
        const timer = setTimeout(() => {
          settle();
          reject(new Error(`the program under callgrind printed no awaited line within ${timeoutMs / 1000} s (see ${out})`));
        }, timeoutMs);
        const settle = () => {
          clearTimeout(timer);
          lines.off("line", onLine);
        };
        lines.on("line", onLine);
        void exited.then(() => {
          settle();
          reject(new Error(`the program under callgrind exited before printing an awaited line (see ${out})`));
        });
      }),
    async count(during) {
      control("-i", "on");
      control("-z");
      try {
        return await during();
      } finally {
        try {
          control("-d");
        } finally {
          control("-i", "off");
        }
        // callgrind_control exits 0 even when it reached no callgrind run.
        if (!existsSync(join(out, "callgrind.out.1-01"))) throw new Error(`callgrind wrote no dump of the main thread (see ${out})`);
      }
    },
    stop,
    report(requests) {
      if (!existsSync(join(out, "perf.map"))) throw new Error(`V8 wrote no perf map (${perfMap}); stop() keeps it`);
      return execFileSync(
        process.execPath,
        ["--import", "tsx", "scripts/bench/callgrind-functions.ts", join(out, "callgrind.out.1-01"), join(out, "perf.map"), String(requests)],
        { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 26 },
      );
    },
    [Symbol.asyncDispose]: stop,
  };
}
