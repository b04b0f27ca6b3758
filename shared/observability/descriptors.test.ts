import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, test } from "vitest";

/**
 * Runs the watch in a process of its own with a limit of 64 descriptors, which it then uses up for real (opening
 * /dev/null), checking as it goes: what it logged, and what `left()` said after each step.
 */
const script = `
import { closeSync, openSync } from "node:fs";
import { countOpenDescriptors, DescriptorWatch } from "./shared/observability/descriptors.ts";
const lines = [];
const log = (level) => (fields, msg) => lines.push({ level, msg, limit: fields.limit });
const watch = new DescriptorWatch({ error: log("error"), warn: log("warn"), info: log("info") }, undefined, undefined, 3_600_000);
const opened = [];
const open = () => { try { opened.push(openSync("/dev/null", "r")); return true; } catch { return false; } };
const step = async (name) => { await watch.check(); lines.push({ step: name, left: watch.left() }); };
await step("at start");
while ((await countOpenDescriptors()).open < 60 && open()) {}
await step("near the limit");
while (open()) {}
await step("none left");
for (const fd of opened.splice(0, 2)) closeSync(fd);
await step("two free");
for (const fd of opened.splice(0)) closeSync(fd);
await step("all closed");
watch.close();
console.log(JSON.stringify(lines));
`;

test("a process that runs out of file descriptors says so at error (warned near the limit), and says when it has them again", { timeout: 30_000 }, async () => {
  const { stdout } = await promisify(execFile)("prlimit", ["--nofile=64:64", process.execPath, "--import", "tsx", "--input-type=module", "-e", script]);
  const lines = (JSON.parse(stdout) as { level?: string; msg?: string; step?: string; left?: boolean; limit?: number }[]).map(({ level, msg, step, left, limit }) =>
    step ? `${step}: ${left ? "left" : "none to spare"}` : `${level} ${msg?.split(":")[0]} (limit ${limit})`,
  );
  expect(lines).toEqual([
    "at start: left",
    "warn file descriptors nearly all in use (limit 64)",
    "near the limit: none to spare",
    "error no file descriptor left (limit 64)",
    "none left: none to spare",
    "warn file descriptors free again, but nearly all still in use (limit 64)",
    "two free: none to spare",
    "info file descriptors back within the limit (limit 64)",
    "all closed: left",
  ]);
});
