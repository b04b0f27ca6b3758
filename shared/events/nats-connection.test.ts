import { expect, test } from "vitest";
import { startNats } from "../../test/helpers/nats.js";
import { waitFor } from "../../test/helpers/processes.js";
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
