import { readFileSync } from "node:fs";
import { availableParallelism, loadavg, totalmem } from "node:os";
import { execFileSync } from "node:child_process";

/** What machine a run was on. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  natsServer: string;
  kernel: string;
  /** 1-minute load average when the run started (other work on a shared machine shows here). */
  loadAverage1m: number;
  /** The commit measured, and the files that differed from it when the run started (outside bench-results/). */
  git: { commit: string; changedFiles: string[] };
}

function gitState(): MachineInfo["git"] {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8", timeout: 5000 }).trim();
    const changedFiles = execFileSync("git", ["status", "--porcelain"], { encoding: "utf8", timeout: 5000 })
      .split("\n")
      .map((line) => line.slice(3).trim())
      .filter((file) => file !== "" && !file.startsWith("bench-results"));
    return { commit, changedFiles };
  } catch {
    return { commit: "unknown", changedFiles: [] };
  }
}

/** Reads nproc, the CPU model from /proc/cpuinfo, memory, Node.js and nats-server versions. */
export function machineInfo(natsServerBin: string): MachineInfo {
  let cpuModel = "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let natsServer = "unknown";
  try {
    natsServer = execFileSync(natsServerBin, ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
  } catch {
    // reported as unknown
  }
  let kernel = "unknown";
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    // not Linux
  }
  return {
    nproc: availableParallelism(),
    cpuModel,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    natsServer,
    kernel,
    loadAverage1m: loadavg()[0]!,
    git: gitState(),
  };
}
