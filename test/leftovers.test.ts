import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { isRunning, ROOT, waitFor } from "./helpers/processes.js";
import { tempDir } from "./helpers/temp-dir.js";

test("a test that times out leaves no process behind: the nats-server it started is killed after its file", async () => {
  using temp = tempDir("orderly-leftovers-");
  const pidFile = join(temp.path, "pid");
  const run = spawnSync(process.execPath, [join(ROOT, "node_modules", "vitest", "vitest.mjs"), "run", "--config", "test/fixtures/vitest.config.ts"], {
    cwd: ROOT,
    env: { ...process.env, ORDERLY_FIXTURE_PID_FILE: pidFile },
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(run.stdout + run.stderr).toContain("Test timed out in 3000ms");
  const pid = Number(readFileSync(pidFile, "utf8"));
  await waitFor(() => !isRunning(pid), "the fixture's nats-server to be gone", 5_000);
});
