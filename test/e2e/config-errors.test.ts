import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { writeDevCredentials } from "../../scripts/dev-security.js";
import { nodeEntry } from "../../shared/process/index.js";
import { ROOT } from "../helpers/processes.js";

/** How a process ends when started with `env`: its exit code and what it wrote to stderr. */
function exitOf(entry: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const [node, ...args] = nodeEntry(entry);
  return new Promise((resolve) => {
    execFile(node, args, { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 }, (error, _stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stderr }),
    );
  });
}

test("a service given a bad setting exits 2 at once with one line naming it, not a stack trace", async () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ["services/order/main.ts", { INVENTORY_FALLBACK: "bogus" }, 'order: INVENTORY_FALLBACK must be one of degrade, fail-fast, got "bogus"'],
    ["services/inventory/main.ts", { LOG_LEVEL: "loud" }, 'inventory: LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"'],
    ["services/query/main.ts", { NATS_URL: "not a url" }, "query: NATS_URL must be server URLs separated by commas"],
    ["gateway/main.ts", { GATEWAY_CACHE_TTL_MS: "abc" }, 'gateway: GATEWAY_CACHE_TTL_MS must be an integer, got "abc"'],
  ];
  // Every other setting is good: the dev credentials of a data directory of its own.
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-config-"));
  try {
    await writeDevCredentials(dataDir);
    const results = await Promise.all(cases.map(([entry, env]) => exitOf(entry, { ORDERLY_DATA_DIR: dataDir, ...env })));
    for (const [i, [, , expected]] of cases.entries()) {
      const { code, stderr } = results[i]!;
      expect({ code, lines: stderr.trim().split("\n").length }).toEqual({ code: 2, lines: 1 });
      expect(stderr).toContain(expected);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
