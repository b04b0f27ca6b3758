/**
 * Instructions per request of a server under callgrind: repeatable where time
 * is not (valgrind counts instructions, whatever else the machine does).
 *
 *   node --import tsx scripts/bench/instructions.ts hello|gateway [--warm 60] [--duration 20] [--out dir]
 *
 * Runs scripts/bench/hit-server.ts under callgrind with instrumentation off
 * (callgrind.ts), warms it up with wrk for --warm seconds (the program runs
 * ~50x slower under valgrind), then counts --duration seconds of
 * `GET /v1/orders/<one id>` from 8 connections (for the gateway: read-cache
 * hits). Prints the main thread's instructions per request and the top
 * functions per request, JIT-compiled JavaScript named through V8's perf map.
 *
 * Totals move by several percent between runs: V8's tiering under valgrind
 * (its compiler threads are slowed too) and per-second work (timers) vary.
 * Per-function counts of work done for each request (hashing, parsing)
 * repeat. Needs valgrind and wrk (apt-get install -y valgrind wrk).
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { outputDirectory, requireTools, startUnderCallgrind } from "./callgrind.js";

const usage = "usage: instructions.ts hello|gateway [--warm 60] [--duration 20] [--out dir]";
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { warm: { type: "string", default: "60" }, duration: { type: "string", default: "20" }, out: { type: "string" } },
});
const mode = positionals[0];
const warmS = Number(values.warm);
const durationS = Number(values.duration);
if (positionals.length !== 1 || (mode !== "hello" && mode !== "gateway") || !(warmS >= 0) || !(durationS > 0)) throw new Error(usage);
requireTools(["wrk"]);
const out = outputDirectory(values.out, mode);

await using server = startUnderCallgrind(["--import", "tsx", "scripts/bench/hit-server.ts"], { env: { ...process.env, MODE: mode }, out });
// Both awaited at once: hit-server prints them one after the other, perhaps in one chunk.
const [authorization, port] = await Promise.all(
  ["AUTHORIZATION=", "PORT="].map(async (key) => (await server.line((line) => line.startsWith(key), 10 * 60_000)).slice(key.length)),
);
const base = `http://127.0.0.1:${port}`;

/** Loads the server for `seconds` with wrk; its report goes to `out/<file>`. Throws when an answer was not 2xx. */
const wrk = async (seconds: number, file: string) => {
  const { stdout } = await promisify(execFile)("wrk", ["-t1", "-c8", `-d${seconds}s`, "-H", `Authorization: ${authorization}`, `${base}/v1/orders/0193f0a0-0000-7000-8000-000000000001`]);
  writeFileSync(join(out, file), stdout);
  if (stdout.includes("Non-2xx")) throw new Error(`some answers were not 2xx: the setup is wrong (see ${join(out, file)})`);
};
/** Requests the server answered so far (the asking one not counted). */
const served = async () => {
  const response = await fetch(`${base}/__served`, { signal: AbortSignal.timeout(60_000) });
  const count = Number(await response.text());
  if (!response.ok || !Number.isSafeInteger(count)) throw new Error(`/__served answered ${response.status}, not a count`);
  return count;
};

if (warmS > 0) await wrk(warmS, "warm-up.txt");
const requests = await server.count(async () => {
  const before = await served();
  await wrk(durationS, "wrk.txt");
  return (await served()) - before;
});
await server.stop();
if (!(requests > 0)) throw new Error(`no request was answered while counting (see ${out})`);
console.log(`${mode}: ${requests} requests counted; callgrind files, perf map and logs in ${out}`);
console.log(server.report(requests));
