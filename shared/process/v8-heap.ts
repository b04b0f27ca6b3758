import { setFlagsFromString } from "node:v8";

/**
 * Turns off V8's allocation-site pretenuring in this process (it takes
 * effect at the next garbage collections, so calling it first thing in a
 * main is early enough). With it on, a gateway under load now and then
 * decided that what a request allocates lives long, allocated it in the
 * old generation for the rest of the process's life, and then spent ~1.5×
 * the CPU per cache hit collecting it there (scavenges of 8–12 ms, a full
 * collection every few hundred ms): 6 of 13 processes side by side, against
 * 0 of 13 with it off (scripts/bench/README.md). What a request allocates
 * dies young; what really lives long is copied twice more before it is
 * promoted, a cost paid once.
 */
export function turnOffPretenuring(): void {
  setFlagsFromString("--no-allocation-site-pretenuring");
}
