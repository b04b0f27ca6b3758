// `npm start`: makes sure dependencies (node_modules, nats-server) are installed, then runs the local
// supervisor (scripts/local-run.ts). Plain JavaScript with no dependencies,
// because it runs before node_modules may exist.
import { spawn } from "node:child_process";
import { groupEnded, signalGroup } from "./process-group.mjs";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ensureAptPackages, ensureNodeModules, natsPackage, nodeSupport } from "./ensure-deps.mjs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

const engines = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node;
const support = nodeSupport(process.versions.node, engines);
if (support === "too old") {
  console.error(`Orderly needs Node ${engines}; this is Node ${process.versions.node}.`);
  process.exit(1);
}
if (support === "untested") console.warn(`Orderly is tested on Node ${engines}; this is Node ${process.versions.node}, which may work.`);

try {
  ensureNodeModules(); // npm ci when node_modules is missing or npm's record of it differs from package-lock.json
  // nats-server, unless told to use another server or binary (scripts/local-run.ts reads these too).
  if (!process.env.NATS_URL && !process.env.NATS_SERVER_BIN) ensureAptPackages([natsPackage]);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}

// Its own process group, so that on exit we can wait for its helpers too (tsx's esbuild outlives it briefly).
// Signals reach it through this process, which forwards them.
const child = spawn(process.execPath, ["--import", "tsx", "scripts/local-run.ts"], { cwd: ROOT, stdio: "inherit", detached: true });

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}

/** A process's state letter and parent pid, from /proc (Linux); undefined when it is gone or /proc cannot say. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

/** A process's command line (Linux /proc), or "" when /proc cannot say. */
function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/**
 * npm's pid when this process runs under npm's shell (dash forks the command: npm is the shell's parent);
 * undefined when npm is the parent itself (a shell that execs it, bash as /bin/sh) or /proc cannot tell.
 */
function npmAboveShell(parent) {
  const grandparent = procStat(parent)?.ppid;
  if (grandparent === undefined || grandparent <= 1) return undefined;
  // npm names itself "npm <command>" (its process title), or runs as node with its CLI script.
  const npmCli = process.env.npm_execpath;
  const isNpm = (pid) => {
    const command = commandLine(pid);
    return /^npm( |$)/.test(command) || (npmCli !== undefined && command.includes(npmCli));
  };
  return !isNpm(parent) && isNpm(grandparent) ? grandparent : undefined;
}

// `npm start` runs this under `sh -c`, and a SIGTERM to npm ends npm and the shell without passing it on
// (measured with npm 11): this process would keep the whole system running. Orphaned, it stops it as on SIGTERM.
// A SIGKILL or SIGHUP to npm ends npm alone, and the shell goes on waiting for this process: so npm (the
// shell's parent, when it is npm) is watched too, and its end (or its lingering as a zombie) stops the system the same way.
// Only under npm: `nohup node scripts/start.mjs &` is orphaned when its shell exits, and is meant to go on.
if (process.env.npm_lifecycle_event === "start") {
  const parent = process.ppid;
  const npm = npmAboveShell(parent);
  const npmEnded = () => {
    if (npm === undefined) return false;
    const stat = procStat(npm);
    return stat === undefined || stat.state === "Z";
  };
  const orphaned = setInterval(() => {
    if (process.ppid === parent && !npmEnded()) return;
    clearInterval(orphaned);
    child.kill("SIGTERM");
  }, 250);
  orphaned.unref();
}

child.on("error", (error) => {
  console.error(`could not start scripts/local-run.ts: ${error.message}`);
  process.exit(1);
});

child.on("exit", async (code) => {
  // Wait (bounded) for the rest of its group, such as tsx's esbuild helper, which ends just after it.
  if (!(await groupEnded(child.pid, 5000))) signalGroup(child.pid, "SIGKILL");
  process.exit(code ?? 1);
});
