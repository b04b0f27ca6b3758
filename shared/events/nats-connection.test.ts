import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { startNats } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { createLogger } from "../logging/index.js";
import { connectNats } from "./nats-connection.js";

test("an outage is logged as it begins and ends, not once per reconnect attempt (nats.js tries every 250 ms)", async () => {
  await using nats = await startNats();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const nc = await connectNats(nats.url, "outage-test", logger);
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  let attempts = 0;
  void (async () => {
    for await (const status of nc.status()) if (status.type === "reconnecting") attempts++;
  })();

  await nats.kill();
  await waitFor(() => attempts >= 4, "nats.js to try a few times", 20_000);
  await nats.restart();
  await waitFor(() => lines.some((l) => l.nats === "reconnect"), "the reconnection to be logged", 20_000);

  const states = lines.filter((l) => l.msg === "nats connection state" && l.nats !== "update").map((l) => l.nats);
  expect(states).toEqual(["disconnect", "reconnecting", "reconnect"]);
  expect(lines.find((l) => l.nats === "reconnect")!.attempts).toBeGreaterThanOrEqual(4);
});

test("logins refused for a while (a server restarted with a wrong configuration) do not end the connection: once the server takes the user again, it reconnects", async () => {
  using dir = tempDir("orderly-auth-");
  const file = join(dir.path, "nats.conf");
  const config = (password: string) => `authorization { users = [ { user: operator, password: op-secret }, { user: order, password: ${password} } ] }\n`;
  writeFileSync(file, config("order-secret"));
  await using nats = await startNats({ configFile: file, operator: { user: "operator", pass: "op-secret" } });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const nc = await connectNats(nats.url, "auth-test", logger, { user: "order", pass: "order-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  let refusals = 0;
  let reconnected = false;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error" && String(status.data).includes("AUTHORIZATION_VIOLATION")) refusals++;
      if (status.type === "reconnect") reconnected = true;
    }
  })();

  await nats.kill("SIGKILL");
  writeFileSync(file, config("another-secret"));
  await nats.restart();
  // nats.js gave up for good after the same login error twice in a row: it goes on trying, and is refused again.
  await waitFor(() => refusals >= 3, "the server to refuse the login three times", 20_000);
  await nats.kill("SIGKILL");
  writeFileSync(file, config("order-secret"));
  await nats.restart();
  await waitFor(() => reconnected, "the connection back", 20_000);
  expect(nc.isClosed()).toBe(false);
  // Each attempt's refusal is said once, not four times a second.
  expect(lines.filter((l) => l.nats === "error").map((l) => l.data)).toEqual(["AUTHORIZATION_VIOLATION"]);
});
