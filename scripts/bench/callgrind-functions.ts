/**
 * Instructions per request by function, from a callgrind file of
 * callgrind.ts: JIT-compiled JavaScript (which callgrind knows only by
 * address) is named through the V8 perf map the process wrote
 * (`node --perf-basic-prof`).
 *
 *   node --import tsx scripts/bench/callgrind-functions.ts <callgrind.out> <perf.map> <requests> [top]
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const [file, mapFile, requestsArg, topArg] = process.argv.slice(2);
if (!file || !mapFile || !requestsArg) throw new Error("usage: callgrind-functions.ts <callgrind.out> <perf.map> <requests> [top]");
const requests = Number(requestsArg);

/** The perf map's code ranges, sorted by start; later entries win (V8 reuses addresses). */
const ranges = readFileSync(mapFile, "utf8")
  .split("\n")
  .filter((line) => line !== "")
  .map((line, order) => {
    const [start, size, ...name] = line.split(" ");
    return { start: parseInt(start!, 16), end: parseInt(start!, 16) + parseInt(size!, 16), name: name.join(" "), order };
  })
  .sort((a, b) => a.start - b.start || a.order - b.order);

function jsName(address: number): string {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid]!.start <= address) lo = mid + 1;
    else hi = mid - 1;
  }
  let found: (typeof ranges)[number] | undefined;
  for (let i = hi; i >= 0 && i > hi - 64; i--) {
    const range = ranges[i]!;
    if (range.start <= address && address < range.end && (found === undefined || range.order > found.order)) found = range;
  }
  // The tier marker (*optimized, ^baseline, ~interpreted) is dropped: a function's tiers add up.
  return found === undefined ? "(JIT, not in the map)" : found.name.replace(/^JS:[*^~+]?/, "JS ");
}

const annotated = execFileSync("callgrind_annotate", ["--inclusive=no", "--threshold=100", file], { encoding: "utf8", maxBuffer: 1 << 28 });
const perFunction = new Map<string, number>();
let total = 0;
for (const line of annotated.split("\n")) {
  const match = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
  if (!match || match[2]!.includes("PROGRAM TOTALS")) continue;
  const count = Number(match[1]!.replaceAll(",", ""));
  const jit = /^\?\?\?:0x([0-9a-f]+)/.exec(match[2]!);
  const name = jit ? jsName(parseInt(jit[1]!, 16)) : match[2]!.replace(/^\?\?\?:/, "").replace(/ \[[^\]]*\]$/, "");
  perFunction.set(name, (perFunction.get(name) ?? 0) + count);
  total += count;
}
console.log(`main thread: ${Math.round(total / requests)} instructions per request (${requests} requests)`);
for (const [name, count] of [...perFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 40))) {
  console.log(`${String(Math.round(count / requests)).padStart(8)}  ${name.slice(0, 140)}`);
}
