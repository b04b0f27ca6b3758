import { nodeFlags } from "./v8-heap.js";

/** The command line that runs a TypeScript entry file of this repository (from its root) with Orderly's Node.js flags. */
export function nodeEntry(entry: string): string[] {
  return [process.execPath, ...nodeFlags, "--import", "tsx", entry];
}
