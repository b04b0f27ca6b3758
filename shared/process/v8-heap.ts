import { setFlagsFromString } from "node:v8";

/**
 * Node.js flags Orderly's processes are started with: by `npm start`, the
 * tests and the bench, whose ceilings get them too. `--single-threaded-gc`:
 * V8 collects garbage on the main thread instead of handing parts to helper
 * threads. With several busy processes on a few cores, the helpers' work and
 * their hand-offs cost more CPU than they spare the main thread. It cannot be
 * set once a process runs (V8 aborts), nor in NODE_OPTIONS (Node refuses it),
 * so it is on the command line. Figures: README, Performance. On a machine
 * with cores to spare, parallel collection shortens pauses: leave it out there.
 */
export const nodeFlags: readonly string[] = ["--single-threaded-gc"];

/** Turns off V8's allocation-site pretenuring in this process; call it before any load (why: scripts/bench/README.md, "Instruction counts"). */
export function turnOffPretenuring(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}
