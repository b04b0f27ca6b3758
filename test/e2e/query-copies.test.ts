import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { connect } from "nats";
import { expect, test } from "vitest";
import { exitOf, fatalLines, startService, startWhilePortTaken, waitFor, type ServiceProcess } from "../helpers/processes.js";
import { freePort } from "../helpers/nats.js";
import { natsPasswordFile } from "../../shared/security/index.js";
import { startSystem } from "../helpers/system.js";
import { tempDir } from "../helpers/temp-dir.js";

test("a second query service under the first's QUERY_CONSUMER_NAME exits 1 naming the first, which goes on applying every event", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/TWIN-1:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  using dir = tempDir("orderly-query-twin-");
  // A copy with a database of its own, on free ports, as a second replica given the same settings would be.
  const twin = await exitOf("services/query/main.ts", { ...system.env.query, QUERY_DB_FILE: join(dir.path, "query.db"), QUERY_GRPC_PORT: "0", QUERY_ADMIN_PORT: "0" });
  expect({ code: twin.code, fatal: fatalLines(twin.stdout).map((line) => line.msg), stack: twin.stdout.includes('"stack"'), stderr: twin.stderr }).toEqual({
    code: 1,
    fatal: [
      expect.stringMatching(
        new RegExp(
          `^another query service \\(pid ${system.query.child.pid} on ${hostname()}, since [^)]+\\) already runs the durable consumers named after QUERY_CONSUMER_NAME="query": ` +
            "two copies under one name would each get only some of the events; give this one a QUERY_CONSUMER_NAME of its own, or stop the other$",
        ),
      ),
    ],
    stack: false,
    stderr: "",
  });

  // The first copy was not split: each order's every change reaches its read model.
  for (let i = 0; i < 10; i++) {
    const created = await system.api("POST", "/v1/orders", { body: { customerId: "twin", items: [{ sku: "TWIN-1", quantity: 1 }] } });
    const cancelled = await system.api("POST", `/v1/orders/${created.body.id}:cancel`);
    const read = await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${cancelled.body.version}`);
    expect({ status: read.status, order: read.body.status }).toEqual({ status: 200, order: "ORDER_STATUS_CANCELLED" });
  }
});

/** The messages of the error lines among `logs`, once there is one; undefined before. */
function errorMessages(logs: readonly string[]): string[] | undefined {
  const messages = logs.flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as { level?: number; msg?: string };
      return (parsed.level ?? 0) >= 50 ? [parsed.msg ?? ""] : [];
    } catch {
      return [];
    }
  });
  return messages.length > 0 ? messages : undefined;
}

test("a copy started while the first was paused (not answering, yet still connected) runs; once the first wakes, the later exits 1 within seconds, saying the first missed its events", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/TWIN-2:restock", { body: { quantity: 100, unitPriceMinor: "100" } });
  using dir = tempDir("orderly-query-twin-");
  system.query.child.kill("SIGSTOP");
  let twin: ServiceProcess;
  try {
    twin = await startService("query-twin", "services/query/main.ts", { ...system.env.query, QUERY_DB_FILE: join(dir.path, "query.db"), QUERY_GRPC_PORT: "0", QUERY_ADMIN_PORT: "0" });
    // It heard no answer: it runs the consumers (its checks all hold once their streams are set up).
    const healthOf = (port: number | undefined) => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.json() as Promise<{ status: string }>, () => ({ status: "unreachable" }));
    await waitFor(async () => (await healthOf(twin.adminPort)).status === "ok", "the second copy running");
  } finally {
    system.query.child.kill("SIGCONT");
  }
  await using _twin = twin;
  // Neither reconnected, so only asking again finds the two: the later copy stops.
  const code = await Promise.race([twin.exited, new Promise((resolve) => setTimeout(() => resolve("still running"), 15_000).unref())]);
  expect({ code, fatal: fatalLines(twin.logs.join("\n")).map((line) => line.msg) }).toEqual({
    code: 1,
    fatal: [
      expect.stringMatching(
        new RegExp(
          `^another query service \\(pid ${system.query.child.pid} on ${hostname()}, since [^)]+\\) also runs \\((it asked again|found on asking again)\\) the durable consumers named after QUERY_CONSUMER_NAME="query": .*rebuild the read model of the copy that goes on`,
        ),
      ),
    ],
  });
  // The first says, once, what it lacks and how to mend it.
  const missed = await waitFor(() => errorMessages(system.query.logs), "the first copy saying what it missed");
  expect(missed).toEqual([
    expect.stringMatching(/^another query service ran the durable consumers named after QUERY_CONSUMER_NAME="query" too, since this one was cut off or paused; .*rebuild the read model of the copy that goes on/),
  ]);
  // The first goes on applying every event from then on.
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "twin", items: [{ sku: "TWIN-2", quantity: 1 }] } });
  expect((await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`)).status).toBe(200);
});

test("a second order or inventory service, with a database of its own, exits 1 naming the one running, rather than take some of the events", async () => {
  await using system = await startSystem();
  for (const [service, durable] of [["order", "order-reservation-outcomes"], ["inventory", "inventory-order-events"]] as const) {
    using dir = tempDir(`orderly-${service}-twin-`);
    const prefix = service.toUpperCase();
    // A data directory of its own, with the keys of the rest (as a second replica given a volume of its own would have).
    const twin = await exitOf(`services/${service}/main.ts`, {
      ...system.env[service],
      ORDERLY_DATA_DIR: dir.path,
      ORDERLY_LINK_KEY_FILE: join(system.dataDir, "secrets", "link.key"),
      AUTH_JWT_PUBLIC_KEY_FILE: join(system.dataDir, "secrets", "jwt-public.pem"),
      [`${prefix}_GRPC_PORT`]: "0",
      [`${prefix}_ADMIN_PORT`]: "0",
    });
    expect({ service, code: twin.code, fatal: fatalLines(twin.stdout).map((line) => line.msg) }).toEqual({
      service,
      code: 1,
      fatal: [
        expect.stringMatching(
          new RegExp(
            `^another ${service} service \\(pid ${system[service].child.pid} on ${hostname()}, since [^)]+\\) already runs the ${service} service's durable consumer "${durable}": ` +
              `the ${service} service runs as one process, its database being the record \\(see "Running more than one of each" in the README\\): stop one of the two$`,
          ),
        ),
      ],
    });
  }
  // The running ones took every order on as before.
  await system.api("POST", "/v1/inventory/TWIN-3:restock", { body: { quantity: 5, unitPriceMinor: "100" } });
  const created = await system.api("POST", "/v1/orders", { body: { customerId: "twin", items: [{ sku: "TWIN-3", quantity: 1 }] } });
  expect([created.status, created.body.status]).toEqual([200, "ORDER_STATUS_CONFIRMED"]);
});

test("who runs a query's consumers is answered to an operator asking in the query user's inbox (README: nats --inbox-prefix _INBOX_query req _ORDERLY.consumers.query)", async () => {
  await using system = await startSystem();
  // The operator's connection, with the inbox prefix the README's nats CLI command gives.
  const nc = await connect({ ...system.nats.connectOptions, inboxPrefix: "_INBOX_query" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const answers: unknown[] = [];
  for await (const msg of await nc.requestMany("_ORDERLY.consumers.query", new Uint8Array(), { maxWait: 1000 })) answers.push(msg.json());
  expect(answers).toEqual([expect.objectContaining({ service: "query", pid: system.query.child.pid, host: hostname(), running: true })]);
});

test("two query copies under names of their own each apply every event, and a gateway given both addresses answers every read while each copy is restarted in turn", async () => {
  await using system = await startSystem();
  await system.api("POST", "/v1/inventory/PAIR-1:restock", { body: { quantity: 100_000, unitPriceMinor: "100" } });
  using dir = tempDir("orderly-query-pair-");
  // A second replica: its own data, ports and QUERY_CONSUMER_NAME (so durable consumers of its own), as the README says
  // to run one; it logs in to NATS as the operator, as the local run's users name only the first copy's consumers.
  const portB = await freePort();
  const envB = {
    ...system.env.query,
    QUERY_CONSUMER_NAME: "query-b",
    QUERY_DB_FILE: join(dir.path, "query.db"),
    QUERY_GRPC_PORT: String(portB),
    QUERY_ADMIN_PORT: "0",
    NATS_USER: "operator",
    NATS_PASSWORD_FILE: natsPasswordFile(system.dataDir, "operator"),
  };
  const startB = () => startWhilePortTaken(20, () => startService("query-b", "services/query/main.ts", envB), () => delay(250));
  let copyB = await startB();
  await using _copyB = { [Symbol.asyncDispose]: async () => void (await copyB.stop()) };
  // No read cache, so that every read is a query service's answer. (The system stops its gateways.)
  const uncached = { GATEWAY_CACHE_TTL_MS: "0" };
  const [both, onlyA, onlyB] = await Promise.all([
    system.startGateway({ ...uncached, QUERY_ADDRESS: `ipv4:127.0.0.1:${system.query.port},127.0.0.1:${portB}` }),
    system.startGateway(uncached),
    system.startGateway({ ...uncached, QUERY_ADDRESS: `127.0.0.1:${portB}` }),
  ]);

  // Orders placed and some cancelled, each read back through the gateway that names both copies, until both were restarted.
  const latest = new Map<string, { version: string; status: string }>();
  const failures: string[] = [];
  let restarting = true;
  const traffic = (async () => {
    for (let i = 0; restarting || i < 20; i++) {
      const created = await system.api("POST", "/v1/orders", { body: { customerId: `pair-${i % 5}`, items: [{ sku: "PAIR-1", quantity: 1 }] } });
      if (created.status !== 200) throw new Error(`POST answered ${created.status}: ${JSON.stringify(created.body)}`);
      let order = created.body as { id: string; version: string; status: string };
      if (i % 3 === 0) order = (await system.api("POST", `/v1/orders/${order.id}:cancel`)).body;
      latest.set(order.id, order);
      const read = await both.api("GET", `/v1/orders/${order.id}?minVersion=${order.version}`);
      if (read.status !== 200 || read.body.status !== order.status) failures.push(`${order.id}: ${read.status} ${JSON.stringify(read.body)}`);
    }
  })();
  // Its failure is told by the `await` below (and ends the waits for more orders at once).
  let stopped = false;
  traffic.catch(() => undefined).finally(() => (stopped = true));
  const ordersUpTo = (count: number, when: string) => waitFor(() => stopped || latest.size >= count, `orders ${when}`, 60_000);
  try {
    await ordersUpTo(10, "before the first restart");
    await system.restart("query");
    const beforeB = latest.size;
    await ordersUpTo(beforeB + 10, "between the restarts");
    await copyB.stop();
    copyB = await startB();
    const afterB = latest.size;
    await ordersUpTo(afterB + 10, "after the second restart");
  } finally {
    restarting = false;
    await traffic;
  }
  expect(failures).toEqual([]);
  // Each copy, read alone, has every order at its latest version.
  for (const [name, gateway] of [["A", onlyA], ["B", onlyB]] as const) {
    const reads = await Promise.all(
      [...latest].map(async ([id, order]) => {
        const read = await gateway.api("GET", `/v1/orders/${id}?minVersion=${order.version}`);
        return { id, status: read.status, version: read.body.version, order: read.body.status };
      }),
    );
    expect({ name, reads }).toEqual({ name, reads: [...latest].map(([id, order]) => ({ id, status: 200, version: order.version, order: order.status })) });
  }
});
