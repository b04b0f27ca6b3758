import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { startNats } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { createLogger } from "../logging/index.js";
import { connectNats } from "./nats-connection.js";

/**
 * A nats-server whose user `order` has `password`, a logger whose lines the test reads, and `restartWith`, which
 * restarts the server with another password for the user (as an operator's configuration mistake, or its fix).
 */
async function serverWithUser(dir: string, password: string) {
  const file = join(dir, "nats.conf");
  const config = (pass: string) => `authorization { users = [ { user: operator, password: op-secret }, { user: order, password: ${pass} } ] }\n`;
  writeFileSync(file, config(password));
  const nats = await startNats({ configFile: file, operator: { user: "operator", pass: "op-secret" } });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const restartWith = async (pass: string) => {
    await nats.kill("SIGKILL");
    writeFileSync(file, config(pass));
    await nats.restart();
  };
  return { nats, lines, logger, restartWith, [Symbol.asyncDispose]: () => nats[Symbol.asyncDispose]() };
}

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
  await using server = await serverWithUser(dir.path, "order-secret");
  const { lines } = server;
  const nc = await connectNats(server.nats.url, "auth-test", server.logger, { user: "order", pass: "order-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  let refusals = 0;
  let reconnected = false;
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "error" && String(status.data).includes("AUTHORIZATION_VIOLATION")) refusals++;
      if (status.type === "reconnect") reconnected = true;
    }
  })();

  await server.restartWith("another-secret");
  // nats.js gave up for good after the same login error twice in a row: it goes on trying, and is refused again.
  await waitFor(() => refusals >= 3, "the server to refuse the login three times", 20_000);
  await server.restartWith("order-secret");
  await waitFor(() => reconnected, "the connection back", 20_000);
  expect(nc.isClosed()).toBe(false);
  // The outage and each attempt's refusal are said once, not four times a second.
  expect({ disconnects: lines.filter((l) => l.nats === "disconnect").length, errors: lines.filter((l) => l.nats === "error").map((l) => l.data) }).toEqual({
    disconnects: 1,
    errors: ["AUTHORIZATION_VIOLATION"],
  });
});

test("a first login NATS refuses (wrong credentials, or a server not yet configured for the user) is said, at error, and tried again until the server takes it", async () => {
  using dir = tempDir("orderly-auth-");
  await using server = await serverWithUser(dir.path, "another-secret");
  const { lines } = server;
  const connecting = connectNats(server.nats.url, "auth-test", server.logger, { user: "order", pass: "order-secret" });
  await waitFor(() => lines.some((l) => l.msg === "NATS refused this process's login (see its NATS user and password); trying again"), "the refusal said", 20_000);
  await server.restartWith("order-secret");
  const nc = await connecting;
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  expect(lines.at(-1)).toMatchObject({ msg: "nats connected" });
});
