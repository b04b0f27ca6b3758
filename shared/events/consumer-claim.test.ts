import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { expect, test } from "vitest";
import { startNats, type NatsServer } from "../../test/helpers/nats.js";
import { startTcpProxy } from "../../test/helpers/tcp-proxy.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { ConfigError } from "../config/index.js";
import { createLogger, silentLogger } from "../logging/index.js";
import { claimConsumers, queryConsumerClaim, type ClaimOptions } from "./consumer-claim.js";
import { claimSubject } from "./subjects.js";

const claim = queryConsumerClaim("copy-a");

/**
 * Two copies that both run the consumers: the first claims them, is cut off from NATS (it reaches NATS through a proxy
 * the test cuts, and answers no one), and the second claims them meanwhile, with `secondOptions`; `reconnectFirst`
 * brings the first back. `lost` holds what the second is told.
 */
async function splitCopies(nats: NatsServer, secondOptions: ClaimOptions = {}) {
  const proxy = await startTcpProxy({ host: "127.0.0.1", port: nats.port });
  const first = await connect({ ...nats.connectOptions, servers: `nats://${proxy.address}`, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  const second = await connect(nats.connectOptions);
  const closeAll = async () => {
    await Promise.all([first.close(), second.close()]);
    await proxy[Symbol.asyncDispose]();
  };
  const lost: ConfigError[] = [];
  const claimed = (async () => {
    const claimedFirst = await claimConsumers(first, claim, "query", silentLogger());
    const cut = first.status();
    proxy.reset();
    for await (const status of cut) if (status.type === "disconnect") break;
    return { claimedFirst, claimedSecond: await claimConsumers(second, { ...claim, lost: (refusal) => lost.push(refusal) }, "query", silentLogger(), secondOptions) };
  })();
  const { claimedFirst, claimedSecond } = await claimed.catch(async (error: unknown) => {
    await closeAll();
    throw error;
  });
  return {
    claimedFirst,
    claimedSecond,
    lost,
    async reconnectFirst() {
      const back = first.status();
      proxy.pass();
      for await (const status of back) if (status.type === "reconnect") break;
    },
    async [Symbol.asyncDispose]() {
      claimedSecond.close();
      await closeAll();
    },
  };
}

test("a second process claiming the same consumers is refused, naming the first; another name is not; once the first is gone the name is free", async () => {
  await using nats = await startNats();
  const first = await connect(nats.connectOptions);
  const second = await connect(nats.connectOptions);
  await using _connections = { [Symbol.asyncDispose]: async () => void (await Promise.all([first.close(), second.close()])) };
  await claimConsumers(first, claim, "query", silentLogger());

  const refusal = await claimConsumers(second, claim, "query", silentLogger()).catch((error: unknown) => error);
  expect(refusal).toBeInstanceOf(ConfigError);
  expect((refusal as Error).message).toMatch(
    new RegExp(
      `^another query service \\(pid ${process.pid} on ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\) already runs the durable consumers named after QUERY_CONSUMER_NAME="copy-a": ` +
        "two copies under one name would each get only some of the events; give this one a QUERY_CONSUMER_NAME of its own, or stop the other$",
    ),
  );
  await expect(claimConsumers(second, { ...claim, name: "copy-b" }, "query", silentLogger())).resolves.toBeDefined();

  // The first process gone (its connection closed), a new one takes the name.
  await first.close();
  const third = await connect(nats.connectOptions);
  await using _third = { [Symbol.asyncDispose]: () => third.close() };
  await expect(claimConsumers(third, claim, "query", silentLogger())).resolves.toBeDefined();
});

test("a copy gives way to one already running, even when its own clock says it claimed first", async () => {
  await using nats = await startNats();
  const [running, newcomer] = await Promise.all([connect(nats.connectOptions), connect(nats.connectOptions)]);
  await using _connections = { [Symbol.asyncDispose]: async () => void (await Promise.all([running.close(), newcomer.close()])) };
  await claimConsumers(running, claim, "query", silentLogger());
  // The newcomer's host clock ten seconds behind the first's.
  const behind = () => Date.now() - 10_000;
  await expect(claimConsumers(newcomer, claim, "query", silentLogger(), { clock: behind })).rejects.toThrow(/already runs the durable consumers named after QUERY_CONSUMER_NAME="copy-a"/);
});

test("two copies that both run the consumers (one claimed them while the other was cut off from NATS) find each other once it is back: the later stops, whichever reconnected", async () => {
  await using nats = await startNats();
  await using copies = await splitCopies(nats);
  await copies.reconnectFirst();
  // Only the first reconnected, and only it asks again (as the event runtime does after a reconnect): it stays, and its
  // question tells the second, the later, to stop.
  await expect(copies.claimedFirst.check()).resolves.toBeUndefined();
  expect(copies.lost.map((refusal) => refusal.message)).toEqual([expect.stringMatching(/also runs \(it asked again\) the durable consumers named after QUERY_CONSUMER_NAME="copy-a"/)]);
  // Asking itself, the second finds the same.
  await expect(copies.claimedSecond.check()).rejects.toThrow(/also runs \(found on asking again\) the durable consumers named after QUERY_CONSUMER_NAME="copy-a"/);
});

test("a copy still claiming that is asked by a copy running them (one its own questions missed: cut off then, back now) gives way", async () => {
  await using nats = await startNats();
  const nc = await connect(nats.connectOptions);
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  // The running copy is played by hand here, so that it asks without answering: as one whose subscription is not back
  // on the server yet when the claiming copy asks, but whose question after its reconnect comes while that one claims.
  const questions = nc.subscribe(claimSubject(claim.name), { max: 1 });
  await nc.flush();
  const claimer = await connect(nats.connectOptions);
  await using _claimer = { [Symbol.asyncDispose]: () => claimer.close() };
  const claiming = claimConsumers(claimer, claim, "query", silentLogger());
  for await (const _first of questions) break;
  const running = { id: "earlier", since: 0, running: true, service: "query", pid: 4242, host: "elsewhere" };
  await nc.request(claimSubject(claim.name), new TextEncoder().encode(JSON.stringify(running)));
  await expect(claiming).rejects.toThrow(/another query service \(pid 4242 on elsewhere, since 1970-01-01T00:00:00\.000Z\) already runs the durable consumers/);
});

test("of processes claiming the same consumers at once, exactly one runs them", async () => {
  await using nats = await startNats();
  const connections = await Promise.all(Array.from({ length: 4 }, () => connect(nats.connectOptions)));
  await using _connections = { [Symbol.asyncDispose]: async () => void (await Promise.all(connections.map((nc) => nc.close()))) };
  const outcomes = await Promise.allSettled(connections.map((nc) => claimConsumers(nc, claim, "query", silentLogger())));
  expect(outcomes.map((o) => o.status).sort()).toEqual(["fulfilled", "rejected", "rejected", "rejected"]);
});

test("a claim asking every few seconds finds, while connected, a copy running them that it could not hear before (paused, or cut off): the later is told, once", async () => {
  await using nats = await startNats();
  let connected = false;
  await using copies = await splitCopies(nats, { checkEveryMs: 100, isConnected: () => connected });
  // The first back, asking nothing itself (a copy that was paused does not reconnect): the second's own questions find it.
  await copies.reconnectFirst();
  connected = true;
  await expect.poll(() => copies.lost.length, { timeout: 5000 }).toBe(1);
  expect(copies.lost[0]?.message).toMatch(/also runs \(found on asking again\) the durable consumers named after QUERY_CONSUMER_NAME="copy-a"/);
  // Its questions go on (the process it belongs to ends on the first), and find the same: it is not told again.
  const watcher = await connect(nats.connectOptions);
  await using _watcher = { [Symbol.asyncDispose]: () => watcher.close() };
  let questions = 0;
  watcher.subscribe(claimSubject(claim.name), { callback: () => void questions++ });
  await watcher.flush();
  await expect.poll(() => questions, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
  expect(copies.lost.length).toBe(1);
});

test("a NATS user not allowed the claim's subject starts its consumers, saying once it could not ask, and does not ask again until a reconnect", async () => {
  using dir = tempDir("orderly-claim-");
  const configFile = join(dir.path, "nats.conf");
  writeFileSync(
    configFile,
    `authorization { users: [
      { user: operator, password: op-secret },
      { user: limited, password: limited-secret, permissions: { publish: { allow: ["orderly.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
    ] }\n`,
  );
  await using nats = await startNats({ configFile, operator: { user: "operator", pass: "op-secret" } });
  const nc = await connect({ servers: nats.url, user: "limited", pass: "limited-secret" });
  await using _nc = { [Symbol.asyncDispose]: () => nc.close() };
  const lines: string[] = [];
  const logger = createLogger("query", "info", { write: (line: string) => void lines.push(line) });
  const claimed = await claimConsumers(nc, claim, "query", logger);
  const said = () => lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.msg.startsWith("could not ask"));
  expect(said()).toEqual([expect.objectContaining({ level: 40, msg: expect.stringContaining("its NATS user is not allowed the subject") })]);
  // Asked to check again (every 2 s, as the event runtime does), it does not ask: the server would refuse each question.
  const refusals: unknown[] = [];
  void (async () => {
    for await (const status of nc.status()) if (status.type === "error") refusals.push(status.data);
  })();
  for (let i = 0; i < 3; i++) await claimed.check();
  await nc.flush();
  expect({ said: said().length, refusals }).toEqual({ said: 1, refusals: [] });
  // After a reconnect it asks once more (the server's configuration may have changed): still refused, it says so again.
  await claimed.check(true);
  await claimed.check();
  expect(said().length).toBe(2);
});
