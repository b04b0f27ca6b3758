/** Node.js flags of Orderly's service processes and the bench's ceilings (why: scripts/bench/HISTORY.md; V8 aborts if they are set at run time). */
export const nodeFlags: readonly string[] = ["--single-threaded-gc"];

/** The command line that runs a TypeScript entry file of this repository (from its root) with Orderly's Node.js flags. */
export function nodeEntry(entry: string): [string, ...string[]] {
  return [process.execPath, ...nodeFlags, "--import", "tsx", entry];
}
