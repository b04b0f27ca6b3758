import { setFlagsFromString } from "node:v8";

/** Turns off V8's allocation-site pretenuring in this process; call it before any load (why: scripts/bench/README.md, "Instruction counts"). */
export function turnOffPretenuring(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}
