import { spawn } from "node:child_process";
import { expect, test } from "vitest";
import { waitFor } from "../../test/helpers/processes.js";

test.each(["SIGTERM", "SIGINT"] as const)("a %s while the process is starting stops it once started: closed, and exit code 0", async (signal) => {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/slow-start.process.ts"], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, by) => resolve({ code, signal: by })));
  try {
    await waitFor(() => output.includes("starting\n"), "the process to begin its start");
    expect(output).not.toContain("started\n");
    child.kill(signal);
    expect(await ended).toEqual({ code: 0, signal: null });
    expect(output).toMatch(/started\n[^]*closed\n/);
  } finally {
    child.kill("SIGKILL");
  }
});
