import { expect, test } from "vitest";
import { belowLevel, processTable, readLocalRunConfig, restartPlan } from "./local-run.js";

/** What each process of a local run is told to reach the others at, and where the supervisor finds the gateway. */
function addressesUnder(env: Record<string, string>): { host: string; addresses: Record<string, string> } {
  const config = readLocalRunConfig(env, false);
  const ports = { nats: 4222, inventory: 50052, order: 50051, query: 50053, "order-admin": 9051, "inventory-admin": 9052, "query-admin": 9053 };
  const addresses: Record<string, string> = {};
  for (const spec of processTable(config)) {
    for (const [key, value] of Object.entries(spec.env?.(ports) ?? {})) if (/_ADDRESS$|^NATS_URL$/.test(key)) addresses[`${spec.name} ${key}`] = value;
  }
  return { host: config.host, addresses };
}

test("npm start reaches its processes where ORDERLY_BIND_HOST binds them (an IPv6 address in brackets), the loopback for a wildcard; its nats-server stays on the loopback", () => {
  const loopback = addressesUnder({});
  expect(loopback.host).toBe("127.0.0.1");
  expect(loopback.addresses["gateway ORDER_ADDRESS"]).toBe("127.0.0.1:50051");
  expect(addressesUnder({ ORDERLY_BIND_HOST: "0.0.0.0" }).host).toBe("127.0.0.1");
  expect(addressesUnder({ ORDERLY_BIND_HOST: "::" }).host).toBe("127.0.0.1");

  const { host, addresses } = addressesUnder({ ORDERLY_BIND_HOST: "::1" });
  expect(host).toBe("[::1]");
  expect(addresses).toMatchObject({
    "inventory ORDER_ADDRESS": "[::1]:50051",
    "order INVENTORY_ADDRESS": "[::1]:50052",
    "gateway QUERY_ADDRESS": "[::1]:50053",
    "gateway ORDER_ADMIN_ADDRESS": "[::1]:9051",
    "order NATS_URL": "nats://127.0.0.1:4222",
  });
  expect(addressesUnder({ ORDERLY_BIND_HOST: "192.168.1.20" }).addresses["gateway INVENTORY_ADDRESS"]).toBe("192.168.1.20:50052");
});

test("a process that ends unexpectedly is started again after 1, 2, 4, 8 and 16 s; a sixth end within five minutes stops the run", () => {
  let ends: number[] = [];
  const delays: (number | "give up")[] = [];
  for (let i = 0; i < 6; i++) {
    const plan = restartPlan(ends, 1_000_000 + i * 30_000);
    ends = plan.ends;
    delays.push("giveUp" in plan ? "give up" : plan.delayMs);
  }
  expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, "give up"]);
  // Ends older than five minutes are forgotten: a process that ran for a while starts again after 1 s.
  const later = restartPlan(ends, 1_000_000 + 5 * 30_000 + 5 * 60_000);
  expect(later).toEqual({ ends: [1_000_000 + 5 * 30_000 + 5 * 60_000], delayMs: 1000 });
});

test("a process that had run a minute before it ended was not ending over and over: its earlier ends are forgotten (six restarts by hand in five minutes go on)", () => {
  let ends: number[] = [];
  const delays: (number | "give up")[] = [];
  for (let i = 0; i < 6; i++) {
    const now = 1_000_000 + i * 61_000;
    // Each time it had listened for a minute before it ended.
    const plan = restartPlan(ends, now, now - 60_000);
    ends = plan.ends;
    delays.push("giveUp" in plan ? "give up" : plan.delayMs);
  }
  expect(delays).toEqual([1000, 1000, 1000, 1000, 1000, 1000]);
  // One that ran 59 s after five quick ends is still counted with them.
  const quick = [1, 2, 3, 4, 5].map((i) => 2_000_000 + i * 5_000);
  expect(restartPlan(quick, 2_025_000 + 61_000, 2_025_000 + 2_000)).toMatchObject({ giveUp: true });
});

test("npm start's LOG_LEVEL hides nats-server's lines below it as it does the services' (INF at warn), and shows a line whose level it cannot tell", () => {
  const warn = 40;
  const nats = (level: string, msg: string) => `[7250] 2026/12/06 17:43:11.098314 [${level}] ${msg}`;
  const hidden = [nats("TRC", "<<- [PING]"), nats("DBG", "Created system account"), nats("INF", "Starting nats-server"), nats("INF", ""), '{"level":30,"msg":"listening"}'];
  const shown = [nats("WRN", "Plaintext passwords detected"), nats("ERR", "Error listening on port"), nats("FTL", "Error listening on port"), '{"level":40,"msg":"slow"}'];
  const unjudged = [nats("XYZ", "a level nats-server does not have"), "nats-server: open /nope.conf: no such file or directory", "Error: Cannot find module 'x'", "{not json"];
  expect(hidden.filter((line) => !belowLevel(line, warn))).toEqual([]);
  expect([...shown, ...unjudged].filter((line) => belowLevel(line, warn))).toEqual([]);
  // The filter at info: nats-server's info lines pass, its debug lines would not (npm start filters only above info, and
  // starts nats-server without -D, so none come).
  expect([nats("INF", "Server is ready"), nats("DBG", "Created system account")].map((line) => belowLevel(line, 30))).toEqual([false, true]);
});
