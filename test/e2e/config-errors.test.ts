import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { expect, test } from "vitest";
import { writeDevCredentials } from "../../scripts/dev-security.js";
import { runPool } from "../helpers/load.js";
import { exitOf, fatalLines } from "../helpers/processes.js";
import { startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

/** The upper end of a timer duration's range, and why, as a refusal says it. */
const TIMER_LIMIT = "2147483647 (ms; the longest a timer waits, about 24.8 days)";

test("a service given a bad setting exits 2 at once with one line naming it, not a stack trace", async () => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ["services/order/main.ts", { INVENTORY_FALLBACK: "bogus" }, 'order: INVENTORY_FALLBACK must be one of degrade, fail-fast, got "bogus"'],
    ["services/inventory/main.ts", { LOG_LEVEL: "loud" }, 'inventory: LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"'],
    ["services/query/main.ts", { NATS_URL: "not a url" }, "query: NATS_URL must be server URLs separated by commas"],
    ["gateway/main.ts", { GATEWAY_CACHE_TTL_MS: "abc" }, 'gateway: GATEWAY_CACHE_TTL_MS must be an integer, got "abc"'],
    ["gateway/main.ts", { ORDERLY_BIND_HOST: "not-a-host.invalid" }, "gateway: ORDERLY_BIND_HOST cannot be listened on: not-a-host.invalid does not resolve"],
    ["services/order/main.ts", { ORDERLY_BIND_HOST: "not-a-host.invalid" }, "order: ORDERLY_BIND_HOST cannot be listened on: not-a-host.invalid does not resolve"],
    ["services/inventory/main.ts", { ORDERLY_BIND_HOST: "10.255.255.1" }, "inventory: ORDERLY_BIND_HOST cannot be listened on: 10.255.255.1 is not an address of this machine"],
    ["services/query/main.ts", { OTEL_EXPORTER_OTLP_ENDPOINT: "not-a-url" }, 'query: OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, got "not-a-url"'],
    ["gateway/main.ts", { AUTH_JWT_PUBLIC_KEY: "garbage" }, "gateway: AUTH_JWT_PUBLIC_KEY does not hold a PEM public key"],
    ["services/query/main.ts", { AUTH_JWT_PUBLIC_KEY: "garbage" }, "query: AUTH_JWT_PUBLIC_KEY does not hold a PEM public key"],
    ["services/order/main.ts", { ORDERLY_LINK_KEY: "short" }, "order: ORDERLY_LINK_KEY must be at least 32 characters, got 5"],
    [
      "services/inventory/main.ts",
      { ORDERLY_TLS_CA_FILE: "/nonexistent1", ORDERLY_TLS_CERT_FILE: "/nonexistent2", ORDERLY_TLS_KEY_FILE: "/nonexistent3" },
      "inventory: ORDERLY_TLS_CA_FILE names a file that cannot be read: /nonexistent1 (ENOENT",
    ],
    ["services/query/main.ts", { NATS_USER: "query", NATS_PASSWORD_FILE: "/nonexistent.pw" }, "query: NATS_PASSWORD_FILE names a file that cannot be read: /nonexistent.pw (ENOENT"],
    ["gateway/main.ts", { ORDER_ADDRESS: "::bad::" }, "gateway: ORDER_ADDRESS must be host:port"],
    ["gateway/main.ts", { QUERY_ADDRESS: "nohostport" }, "gateway: QUERY_ADDRESS must be host:port"],
    ["gateway/main.ts", { ORDER_ADMIN_ADDRESS: "bad" }, "gateway: ORDER_ADMIN_ADDRESS must be host:port"],
    ["services/order/main.ts", { INVENTORY_ADDRESS: "bad" }, "order: INVENTORY_ADDRESS must be host:port"],
    ["services/inventory/main.ts", { ORDER_ADDRESS: "bad" }, "inventory: ORDER_ADDRESS must be host:port"],
    ["services/inventory/main.ts", { FAULT_DELAY_METHODS: "ReserveStock,NoSuchMethod" }, 'inventory: FAULT_DELAY_METHODS must be names among GetItem, ListItems, Restock, ReserveStock, ReleaseStock, separated by commas, got "NoSuchMethod"'],
    [
      "gateway/main.ts",
      { GATEWAY_HEADERS_TIMEOUT_MS: "60000" },
      "gateway: GATEWAY_HEADERS_TIMEOUT_MS must be between 100 and 40000 (at most the request timeout, MAX_REQUEST_TIMEOUT_MS + 10000 ms, as Node.js requires), got 60000",
    ],
    // Durations a timer waits for, or NATS is sent: a longer one would fire every 1 ms, or be refused by the server for ever.
    ["services/inventory/main.ts", { RESERVATION_SWEEP_INTERVAL_MS: "3000000000" }, `inventory: RESERVATION_SWEEP_INTERVAL_MS must be between 100 and ${TIMER_LIMIT}, got 3000000000`],
    ["services/order/main.ts", { PENDING_RECOVERY_INTERVAL_MS: "3000000000" }, `order: PENDING_RECOVERY_INTERVAL_MS must be between 100 and ${TIMER_LIMIT}, got 3000000000`],
    ["gateway/main.ts", { OTEL_BSP_SCHEDULE_DELAY: "3000000000" }, `gateway: OTEL_BSP_SCHEDULE_DELAY must be between 1 and ${TIMER_LIMIT}, got 3000000000`],
    ["services/query/main.ts", { CONSUMER_ACK_WAIT_MS: "99999999999999" }, `query: CONSUMER_ACK_WAIT_MS must be between 100 and ${TIMER_LIMIT}, got 99999999999999`],
    ["services/order/main.ts", { INVENTORY_ATTEMPT_TIMEOUT_MS: "3000000000" }, `order: INVENTORY_ATTEMPT_TIMEOUT_MS must be between 20 and ${TIMER_LIMIT}, got 3000000000`],
    // An attempt given less than 20 ms would never be sent a change (the service would refuse it).
    ["services/order/main.ts", { INVENTORY_ATTEMPT_TIMEOUT_MS: "10" }, `order: INVENTORY_ATTEMPT_TIMEOUT_MS must be between 20 and ${TIMER_LIMIT}, got 10`],
    ["services/order/main.ts", { INVENTORY_BREAKER_HALF_OPEN_MS: "3000000000" }, `order: INVENTORY_BREAKER_HALF_OPEN_MS must be between 1 and ${TIMER_LIMIT}, got 3000000000`],
    ["services/inventory/main.ts", { FAULT_DELAY_MS: "3000000000" }, `inventory: FAULT_DELAY_MS must be between 0 and ${TIMER_LIMIT}, got 3000000000`],
    // The query's durable consumers are named after it; npm start gives its NATS user those names.
    ...["a.b", "a b"].map((name): [string, Record<string, string>, string] => [
      "services/query/main.ts",
      { QUERY_CONSUMER_NAME: name },
      `query: QUERY_CONSUMER_NAME must be 1 to 64 letters, digits, "-" or "_" (the query's durable consumers are named after it, and NATS refuses a durable name with ".", "*", ">", a space or a slash), got "${name}"`,
    ]),
    ["scripts/local-run.ts", { QUERY_CONSUMER_NAME: "a.b" }, 'QUERY_CONSUMER_NAME must be 1 to 64 letters, digits, "-" or "_"'],
  ];
  // Every other setting is good: the dev credentials of a data directory of its own.
  using temp = tempDir("orderly-config-");
  const dataDir = temp.path;
  await writeDevCredentials(dataDir);
  // A few at a time: started all at once on a machine of two cores, a process can take longer than exitOf's timeout to load.
  const results = await runPool(cases.length, 6, (i) => exitOf(cases[i]![0], { ORDERLY_DATA_DIR: dataDir, ...cases[i]![1] }));
  for (const [i, [, , expected]] of cases.entries()) {
    const { code, stderr } = results[i]!;
    expect({ expected, code, lines: stderr.trim().split("\n").length, named: stderr.includes(expected) }).toEqual({ expected, code: 2, lines: 1, named: true });
  }
});

test("a process whose port is taken exits 1 with one log line naming the variable that set it, not a stack trace", async () => {
  using temp = tempDir("orderly-port-taken-");
  await writeDevCredentials(temp.path);
  const taker = createServer();
  await new Promise<void>((resolve) => taker.listen(0, "127.0.0.1", resolve));
  using _taker = { [Symbol.dispose]: () => void taker.close() };
  const port = (taker.address() as AddressInfo).port;
  // The process's other port is picked free: only the one taken is in the way (order and inventory have a database each in the directory).
  const cases: [entry: string, setting: string, other: string][] = [
    ["services/order/main.ts", "ORDER_GRPC_PORT", "ORDER_ADMIN_PORT"],
    ["services/inventory/main.ts", "INVENTORY_ADMIN_PORT", "INVENTORY_GRPC_PORT"],
    ["gateway/main.ts", "GATEWAY_PORT", "GATEWAY_ADMIN_PORT"],
    ["gateway/main.ts", "GATEWAY_ADMIN_PORT", "GATEWAY_PORT"],
  ];
  const results = await runPool(cases.length, 4, (i) => exitOf(cases[i]![0], { ORDERLY_DATA_DIR: temp.path, [cases[i]![2]]: "0", [cases[i]![1]]: String(port) }));
  for (const [i, [, setting]] of cases.entries()) {
    const { code, stdout, stderr } = results[i]!;
    // Standard error stays empty, and the log has no line of grpc-js's own ("E … No address added", which it printed there before).
    // (A port the kernel picked lies in its range for outgoing connections, which the line also says: listen.test.ts.)
    expect({ setting, code, fatal: fatalLines(stdout).map((line) => line.msg), stack: stdout.includes('"stack"'), stderr, grpcLines: stdout.includes('"component":"grpc-js"') }).toEqual({
      setting,
      code: 1,
      fatal: [expect.stringMatching(new RegExp(`^${setting}: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use\\b.*; set ${setting} to a free port$`))],
      stack: false,
      stderr: "",
      grpcLines: false,
    });
  }
});

test("a data directory that cannot be made ends a service, and npm start, at once with one line naming the path", async () => {
  const linkKey = "k".repeat(40);
  const [order, local] = await Promise.all([
    // Under /proc, where Node 20's recursive mkdir spun for ever.
    exitOf("services/order/main.ts", { ORDERLY_DATA_DIR: "/proc/orderly-nope", ORDERLY_LINK_KEY: linkKey }),
    exitOf("scripts/local-run.ts", { ORDERLY_DATA_DIR: "/dev/null" }),
  ]);
  expect({ code: order.code, fatal: fatalLines(order.stdout).map((line) => line.msg), stack: order.stdout.includes('"stack"') }).toEqual({
    code: 1,
    fatal: ["the folder /proc/orderly-nope cannot be made (ENOENT): choose another path"],
    stack: false,
  });
  expect({ code: local.code, stderr: local.stderr }).toEqual({
    code: 1,
    stderr: "could not prepare the data directory (its lock and dev credentials): /dev/null is not a folder, so /dev/null/nats cannot be made there: choose another path\n",
  });
});

test("a second instance of a service on a data directory in use refuses to start, naming its database, and the first goes on", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/ONE-WRITER:restock", { body: { quantity: 5 } });
  const entries = { order: "services/order/main.ts", inventory: "services/inventory/main.ts", query: "services/query/main.ts" } as const;
  const ports = { order: "ORDER", inventory: "INVENTORY", query: "QUERY" } as const;
  const results = await Promise.all(
    (["order", "inventory", "query"] as const).map((name) => exitOf(entries[name], { ...system.env[name], [`${ports[name]}_GRPC_PORT`]: "0", [`${ports[name]}_ADMIN_PORT`]: "0" })),
  );
  for (const [i, name] of (["order", "inventory", "query"] as const).entries()) {
    const fatal = fatalLines(results[i]!.stdout);
    expect({ name, code: results[i]!.code, message: fatal[0]?.msg, stack: results[i]!.stdout.includes('"stack"') }).toEqual({
      name,
      code: 1,
      message: `${join(system.dataDir, `${name}.db`)} is held by another process, its one writer (is the ${name} service running on it?): stop that process first, or use another data directory`,
      stack: false,
    });
    expect(results[i]!.stdout).not.toContain('"msg":"listening"');
  }
  // The running services never noticed: an order goes through and is read back at its version.
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "ONE-WRITER", quantity: 1 }] } });
  expect(created.status).toBe(200);
  expect((await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`)).body).toEqual(created.body);
});
