import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, test } from "vitest";
import { DEMO_CATALOG } from "../../scripts/local-run.js";
import { freePorts, nodeFlags } from "../../shared/process/index.js";
import { holdExclusively } from "../../shared/sqlite/index.js";
import { isRunning, ROOT, runRebuild, waitFor } from "../helpers/processes.js";
import { api } from "../helpers/system.js";

const START_TIMEOUT_MS = 90_000;

/** `node scripts/start.mjs` running in a test, with everything it printed so far. */
interface LocalRun extends AsyncDisposable {
  readonly child: ChildProcess;
  /** stdout and stderr, interleaved as they arrived. */
  output(): string;
  /** Whether it has exited and everything it printed has been read. */
  ended(): boolean;
  /** The pids the supervisor reported for the processes it started. */
  servicePids(): number[];
  /** The pid it last reported for one of them (one started again has a new one). */
  pidOf(name: string): number;
  /** Every process descended from start.mjs right now. */
  descendants(): number[];
  /** Sends a signal and resolves with how the process ended. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The environment of a local run on free ports, starting its own nats-server, with its data in `dataDir`. */
async function localRunEnv(dataDir: string): Promise<Record<string, string>> {
  const [gatewayPort, gatewayAdminPort, orderPort, inventoryPort, queryPort, natsPort] = await freePorts(6);
  return {
    GATEWAY_PORT: String(gatewayPort),
    GATEWAY_ADMIN_PORT: String(gatewayAdminPort),
    ORDER_GRPC_PORT: String(orderPort),
    INVENTORY_GRPC_PORT: String(inventoryPort),
    QUERY_GRPC_PORT: String(queryPort),
    NATS_PORT: String(natsPort),
    // Admin ports: 0 picks free ones, which the run passes on to the gateway's status page.
    ORDER_ADMIN_PORT: "0",
    INVENTORY_ADMIN_PORT: "0",
    QUERY_ADMIN_PORT: "0",
    NATS_URL: "", // start its own nats-server
    ORDERLY_DATA_DIR: dataDir,
  };
}

/** The pids of every process descended from `pid`, from `ps`. */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const row of execFileSync("ps", ["-A", "-o", "pid=,ppid="], { encoding: "utf8" }).split("\n")) {
    const [child, parent] = row.trim().split(/\s+/).map(Number);
    if (child === undefined || parent === undefined || Number.isNaN(child) || Number.isNaN(parent)) continue;
    children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** Runs `node scripts/start.mjs` (or `npm start`, which runs it); disposing it stops it and kills anything it left behind. */
function startLocalRun(env: Record<string, string>, how: "node" | "npm" = "node"): LocalRun {
  const [command, args] = how === "node" ? [process.execPath, ["scripts/start.mjs"]] : ["npm", ["start"]];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  let closed = false;
  child.once("close", () => (closed = true));
  const seen = new Set<number>();
  const descendants = () => {
    const pids = child.pid === undefined ? [] : descendantsOf(child.pid);
    for (const pid of pids) seen.add(pid);
    return pids;
  };
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    child,
    output: () => output,
    ended: () => closed,
    servicePids: () => [...output.matchAll(/starting \S+ \(pid (\d+)\)/g)].map((m) => Number(m[1])),
    pidOf: (name) => Number([...output.matchAll(new RegExp(`starting ${name} \\(pid (\\d+)\\)`, "g"))].at(-1)![1]),
    descendants,
    stop,
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        descendants();
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(timer);
      }
      for (const pid of seen) if (isRunning(pid)) process.kill(pid, "SIGKILL");
    },
  };
}

/** The shell commands of the ready banner (its lines after the token variables, without comments and colors). */
function bannerCommands(output: string): string {
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const lines = plain.split("\n");
  const start = lines.findIndex((line) => line.trim().startsWith("ADMIN="));
  const end = lines.findIndex((line) => line.includes("Press Ctrl-C to stop."));
  if (start < 0 || end < start) throw new Error(`no commands in the banner:\n${plain}`);
  return lines
    .slice(start, end)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .join("\n");
}

/** Waits until the run printed its banner and the gateway answers /readyz with 200. */
async function waitUntilReady(run: LocalRun, baseUrl: string): Promise<void> {
  await waitFor(() => run.output().includes("Press Ctrl-C to stop.") || run.child.exitCode !== null, "the ready banner", START_TIMEOUT_MS);
  if (run.child.exitCode !== null) throw new Error(`npm start exited (${run.child.exitCode}):\n${run.output()}`);
  await waitFor(async () => (await api(baseUrl, "GET", "/readyz")).status === 200, "/readyz = 200");
}

/**
 * Waits until the gateway's status page finds every process healthy; polled, as the gateway's cache counts as healthy
 * once it hears events, which may come a moment after the banner (or a restart).
 */
async function everyProcessHealthy(adminUrl: string): Promise<void> {
  const health = async () => (await api(adminUrl, "GET", "/status.json")).body.processes.map((p: { name: string; healthy: boolean }) => [p.name, p.healthy]);
  await expect.poll(health, { timeout: 15_000 }).toEqual([
    ["gateway", true],
    ["order", true],
    ["inventory", true],
    ["query", true],
  ]);
}

/** Stops a run with SIGTERM and checks that it exits 0 leaving no process behind. */
async function stopCleanly(run: LocalRun): Promise<void> {
  const pids = run.descendants();
  expect(pids).toEqual(expect.arrayContaining(run.servicePids()));
  expect(run.servicePids()).toHaveLength(5); // nats, inventory, order, query, gateway
  expect(await run.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  expect(pids.filter(isRunning)).toEqual([]);
  expect(run.output()).toContain("stopped; nothing left running");
}

test("npm start on an empty data dir comes up ready, serves the demo catalog, and leaves no process behind after SIGTERM", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-local-run-"));
  // As a plain mkdir leaves it: readable by everyone (what is in it is not).
  chmodSync(dataDir, 0o755);
  try {
    const env = await localRunEnv(dataDir);
    const baseUrl = `http://127.0.0.1:${env.GATEWAY_PORT}`;
    const adminUrl = `http://127.0.0.1:${env.GATEWAY_ADMIN_PORT}`;
    const demoSkus = DEMO_CATALOG.map((item) => item.sku).sort();
    const [restocked, untouched] = DEMO_CATALOG;
    /** The rebuild's output while the system ran, which a failed rebuild later must leave as it was. */
    let rebuiltBefore = Buffer.alloc(0);
    if (restocked === undefined || untouched === undefined) throw new Error("the demo catalog needs two SKUs");

    {
      await using run = startLocalRun(env);
      await waitUntilReady(run, baseUrl);
      expect(run.output()).toContain(`Orderly is running at ${baseUrl}`);
      expect(run.output()).toContain(`curl -sS -w '\\n' -H "$ALICE" ${baseUrl}/v1/inventory`);
      expect(run.output()).toContain("seeded the demo catalog");
      expect(run.output()).toContain(`live status: ${adminUrl}/status`);
      expect(run.output()).toContain(`metrics: ${adminUrl}/metrics`);
      // The NATS store (every event) and the databases are the owner's alone; the data directory, which existed, is as the user left it.
      const owned = [dataDir, join(dataDir, "nats"), ...["order", "inventory", "query"].map((name) => join(dataDir, `${name}.db`))];
      expect(owned.map((path) => (statSync(path).mode & 0o777).toString(8))).toEqual(["755", "700", "600", "600", "600"]);
      // Not a terminal: the processes' lines are their JSON, and the status page finds every service.
      expect(run.output()).toMatch(/^\{"level":30,.*"service":"order".*"msg":"listening"/m);
      expect(run.output()).toMatch(/^nats +\| \d\d:\d\d:\d\d INF +Server is ready$/m);
      await everyProcessHealthy(adminUrl);
      // The services run with Orderly's Node.js flags (shared/process/node-entry.ts): Node's options, before the entry file.
      const services = run
        .servicePids()
        .map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"))
        .filter((args) => args.some((arg) => arg.endsWith("main.ts")));
      expect(services).toHaveLength(4);
      expect(nodeFlags).toContain("--single-threaded-gc");
      for (const args of services) expect(args.slice(1, args.findIndex((arg) => arg.endsWith("main.ts")))).toEqual(expect.arrayContaining([...nodeFlags]));

      // A second run on the same data directory (on ports of its own) would share its databases and NATS store: refused.
      {
        await using second = startLocalRun(await localRunEnv(dataDir));
        await waitFor(() => second.ended(), "a second npm start on the same data directory to exit", START_TIMEOUT_MS);
        expect(second.child.exitCode).toBe(1);
        expect(second.output()).toContain(`${dataDir} is in use by another npm start: stop it first, or give this one its own ORDERLY_DATA_DIR`);
        expect(second.servicePids()).toEqual([]);
      }

      // Security is on: dev tokens for an admin and two customers are in the data directory.
      const tokens = JSON.parse(readFileSync(join(dataDir, "dev-tokens.json"), "utf8")) as { admin: string; customers: Record<string, string> };
      expect(Object.keys(tokens.customers).length).toBeGreaterThanOrEqual(2);
      const admin = { authorization: `Bearer ${tokens.admin}` };
      expect((await api(baseUrl, "GET", "/v1/inventory")).status).toBe(401);

      // The commands the banner prints work when pasted into a shell.
      const pasted = bannerCommands(run.output());
      // Asynchronously, so the system's log pipes keep draining while the shell runs; bounded, so a hung curl fails the test.
      const shell = await promisify(execFile)("bash", ["-c", `set -euo pipefail\n${pasted}`], { encoding: "utf8", timeout: 60_000 });
      expect(shell.stdout).toContain('"status":"ORDER_STATUS_CANCELLED"');

      const list = await api(baseUrl, "GET", "/v1/inventory", { headers: admin });
      expect(list.status).toBe(200);
      expect(list.body.items.map((item: { sku: string }) => item.sku).sort()).toEqual(demoSkus);
      expect(list.body.items.find((item: { sku: string }) => item.sku === restocked.sku)).toMatchObject({
        name: restocked.name,
        unitPriceMinor: restocked.unitPriceMinor,
        currencyCode: "USD",
        available: restocked.quantity + 10, // the banner's restock; its order was cancelled
      });
      const restock = await api(baseUrl, "POST", `/v1/inventory/${restocked.sku}:restock`, { body: { quantity: 7 }, headers: admin });
      expect(restock.status).toBe(200);
      // The banner's commands restocked 10 and ordered 2, then cancelled the order (giving the 2 back).
      expect(restock.body.available).toBe(restocked.quantity + 10 + 7);

      await stopCleanly(run);
    }

    {
      // This time through npm, as the README says, and stopped the way a process manager stops it: SIGTERM to npm.
      // With LOG_LEVEL=warn: the processes' info lines (which the supervisor waits for) are not shown, nats-server's neither.
      await using run = startLocalRun({ ...env, LOG_LEVEL: "warn" }, "npm");
      await waitUntilReady(run, baseUrl);
      expect(run.output()).toContain("no demo seed");
      expect(run.output()).not.toMatch(/^\{"level":30,/m);
      expect(run.output()).not.toMatch(/^nats +\| \S+ INF /m);
      expect(run.output()).not.toContain("seeded the demo catalog");

      const tokens = JSON.parse(readFileSync(join(dataDir, "dev-tokens.json"), "utf8")) as { admin: string };
      const admin = { headers: { authorization: `Bearer ${tokens.admin}` } };
      const list = await api(baseUrl, "GET", "/v1/inventory", admin);
      expect(list.body.items.map((item: { sku: string }) => item.sku).sort()).toEqual(demoSkus);
      expect((await api(baseUrl, "GET", `/v1/inventory/${restocked.sku}`, admin)).body.available).toBe(restocked.quantity + 10 + 7);
      expect((await api(baseUrl, "GET", `/v1/inventory/${untouched.sku}`, admin)).body.available).toBe(untouched.quantity);

      // `npm run rebuild`, as the README gives it, logs in as npm start's query user by itself (its nats-server refuses anonymous clients).
      const rebuild = await runRebuild(env);
      expect(rebuild.stdout).toContain("the rebuilt read models equal the live ones");
      rebuiltBefore = readFileSync(join(dataDir, "query.rebuilt.db"));
      // Replacing the read model under the running query service would lose what it applies next: refused, nothing changed.
      const replacing = await rebuildOutcome(env, ["--replace"]);
      expect(replacing).toMatch(/^exited 1: [\s\S]*query\.db is held by another process, its one writer \(is the query service running on it\?\): stop that process first/);
      // Nor may --out name the read model: the rebuild would empty the file the running service writes to.
      const liveFile = join(dataDir, "query.db");
      const liveInode = statSync(liveFile).ino;
      const overLive = await rebuildOutcome(env, ["--out", liveFile]);
      expect(overLive).toBe(`exited 1: --out ${liveFile} is the read model itself: give another file, or use --replace to swap the rebuilt one in\n`);
      expect(statSync(liveFile).ino).toBe(liveInode);
      // Nor a file of something else: it is left as it was.
      const notes = join(dataDir, "notes.txt");
      writeFileSync(notes, "not a database\n");
      const overNotes = await rebuildOutcome(env, ["--out", notes]);
      expect(overNotes).toBe(`exited 1: --out ${notes} is a file that is not a SQLite database, which the rebuild would replace: give another path\n`);
      expect(readFileSync(notes, "utf8")).toBe("not a database\n");
      // A mistyped option does nothing, rather than a rebuild that was not asked for.
      const mistyped = await rebuildOutcome(env, ["--replcae"]);
      expect(mistyped).toMatch(/^exited 1: Unknown option '--replcae'[\s\S]*usage: npm run rebuild -- \[--out <file>\] \[--replace \[--allow-loss\]\]/);
      expect((await api(baseUrl, "GET", `/v1/inventory/${restocked.sku}`, admin)).body.available).toBe(restocked.quantity + 10 + 7);

      // npm killed outright (a SIGTERM also ends it without passing the signal on): start.mjs sees npm gone and stops the
      // system, though the shell npm ran it under is still there waiting for it.
      const pids = run.descendants();
      expect(pids).toEqual(expect.arrayContaining(run.servicePids()));
      await run.stop("SIGKILL");
      await waitFor(() => run.ended(), "everything npm start ran to stop (its output closed)", 30_000);
      expect(pids.filter(isRunning)).toEqual([]);
      expect(run.output()).toContain("stopped; nothing left running");
    }

    // With nothing running, the rebuild says at once that NATS does not answer, instead of waiting for it.
    const unreachable = await rebuildOutcome(env);
    expect(unreachable).toMatch(/^exited 1: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+ as user query \(.*\): start Orderly first/);
    // A rebuild that failed left the earlier one's output as it was (it builds beside it, and moves it in once whole).
    expect(readFileSync(join(dataDir, "query.rebuilt.db")).equals(rebuiltBefore)).toBe(true);
    // Nor does it ever write over a database that is not a read model (the order service's own, say), a folder, or into
    // a folder that is not there: refused before it reads anything, the file left as it was.
    const orderDb = join(dataDir, "order.db");
    const orderBytes = readFileSync(orderDb);
    const orderFiles = () => readdirSync(dataDir).filter((name) => name.startsWith("order.db")).sort();
    const orderFilesBefore = orderFiles();
    const refusals = await Promise.all(
      [orderDb, dataDir, join(dataDir, "no-such-folder", "x.db")].map((out) =>
        rebuildOutcome(env, ["--out", out]),
      ),
    );
    expect(refusals).toEqual([
      expect.stringMatching(new RegExp(`^exited 1: --out ${orderDb} is a database that is not a read model \\(its tables: .*orders.*\\), which the rebuild would replace: give another path\n$`)),
      `exited 1: --out ${dataDir} is a folder: give the path of a file\n`,
      `exited 1: the folder of --out ${join(dataDir, "no-such-folder", "x.db")} does not exist: create it, or give another path\n`,
    ]);
    expect(readFileSync(orderDb).equals(orderBytes)).toBe(true);
    // Looked at, not touched: no -wal or -shm left beside it either.
    expect(orderFiles()).toEqual(orderFilesBefore);
    // One rebuild at a time writes an output: another would delete the file the first builds.
    const writing = holdExclusively(join(dataDir, "query.rebuilt.db.building.lock"));
    try {
      const second = await rebuildOutcome(env);
      expect(second).toBe(`exited 1: another rebuild is writing ${join(dataDir, "query.rebuilt.db")}: wait for it to end, or give another file with --out\n`);
    } finally {
      writing?.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** How `npm run rebuild` with `args` ended: "exited 0", or "exited <code>: <what it wrote to stderr>". */
function rebuildOutcome(env: Record<string, string>, args: string[] = []): Promise<string> {
  return runRebuild(env, args).then(
    () => "exited 0",
    (error: { code?: number; stderr?: string }) => `exited ${error.code}: ${error.stderr}`,
  );
}

/** Runs `body` with a local run of its own data directory once it is ready, given the pids of every process it runs then. */
async function withReadyRun(body: (run: LocalRun, pids: number[], env: Record<string, string>) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-local-run-"));
  try {
    const env = await localRunEnv(dataDir);
    await using run = startLocalRun(env);
    await waitUntilReady(run, `http://127.0.0.1:${env.GATEWAY_PORT}`);
    const pids = run.descendants();
    expect(pids).toEqual(expect.arrayContaining(run.servicePids()));
    await body(run, pids, env);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

test("npm start whose output's reader has gone (npm start | tee, the tee ended by the same Ctrl-C) still stops everything it started on SIGTERM", () =>
  withReadyRun(async (run, pids) => {
    // Its writes fail from here on (EPIPE), which ended the supervisor before it stopped anything, leaving every process.
    run.child.stdout!.destroy();
    expect(await run.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(pids.filter(isRunning)).toEqual([]);
  }));

test("npm start's supervisor killed outright (SIGKILL, the OOM killer): nats-server and the services it started stop by themselves", () =>
  withReadyRun(async (run, pids) => {
    const commandOf = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        return ""; // ended since (tsx's esbuild, say)
      }
    };
    const supervisor = pids.find((pid) => commandOf(pid).includes("scripts/local-run.ts"));
    if (supervisor === undefined) throw new Error(`no supervisor among ${pids.join(", ")}`);
    // Each process leads a process group of its own: they went on running, holding their ports and the data directory.
    process.kill(supervisor, "SIGKILL");
    await waitFor(() => pids.every((pid) => !isRunning(pid)), "every process npm start ran to end", 30_000);
    await waitFor(() => run.ended(), "start.mjs to exit", 10_000);
    expect(run.child.exitCode).toBe(1);
  }));

test("npm start starts a process that ended unexpectedly (kill -9) again, on the ports it had: orders go on and their events reach the read model", () =>
  withReadyRun(async (run, _pids, env) => {
    const baseUrl = `http://127.0.0.1:${env.GATEWAY_PORT}`;
    const adminUrl = `http://127.0.0.1:${env.GATEWAY_ADMIN_PORT}`;
    const tokens = JSON.parse(readFileSync(join(env.ORDERLY_DATA_DIR!, "dev-tokens.json"), "utf8")) as { customers: Record<string, string> };
    const alice = { authorization: `Bearer ${tokens.customers.alice}` };
    // The query service (whose admin port was a free one: the gateway's status page reaches it there again), then nats-server.
    for (const name of ["query", "nats"]) {
      const killed = run.pidOf(name);
      process.kill(killed, "SIGKILL");
      await waitFor(() => run.output().includes(`${name} is running again (pid ${run.pidOf(name)})`) && run.pidOf(name) !== killed, `${name} started again`, 60_000);
      expect(run.output()).toContain(`${name} exited unexpectedly (killed by SIGKILL). Starting it again in 1 s.`);
      expect(isRunning(killed)).toBe(false);
    }
    expect(run.child.exitCode).toBeNull();
    // Once the status page says every process is healthy again (the query service started again has set up its consumers,
    // which NATS going down right after its start can hold up a few seconds), a new order reaches the read model at once.
    await everyProcessHealthy(adminUrl);
    const order = { customerId: "alice", items: [{ sku: DEMO_CATALOG[0]!.sku, quantity: 1 }] };
    const created = await waitFor(async () => {
      const r = await api(baseUrl, "POST", "/v1/orders", { headers: alice, body: order });
      return r.status === 200 ? r : undefined;
    }, "an order confirmed after the restarts", 30_000);
    const read = await api(baseUrl, "GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { headers: alice });
    expect({ status: read.status, orderStatus: read.body.status }).toEqual({ status: 200, orderStatus: "ORDER_STATUS_CONFIRMED" });
    await everyProcessHealthy(adminUrl);
    // Stopped as usual: every process, the ones started again too, ends, and the run exits 0.
    const pids = run.descendants();
    expect(pids).toEqual(expect.arrayContaining([run.pidOf("query"), run.pidOf("nats")]));
    expect(await run.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(pids.filter(isRunning)).toEqual([]);
    expect(run.output()).toContain("stopped; nothing left running");
  }));

test("npm start names the port a process started again cannot take, starts it once the port is free, and a stop while a process waits to be started again exits 0", () =>
  withReadyRun(async (run) => {
    // The query service's admin port was picked free (QUERY_ADMIN_PORT=0); it is started again on that port.
    const queryAdminPort = () => Number([...run.output().matchAll(/"service":"query"[^\n]*"adminPort":(\d+)/g)].at(-1)![1]);
    const adminPort = queryAdminPort();
    const killed = run.pidOf("query");
    process.kill(killed, "SIGKILL");
    await waitFor(() => run.output().includes("query exited unexpectedly (killed by SIGKILL). Starting it again in 1 s."), "the restart's wait");
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(adminPort, "127.0.0.1", resolve));
    try {
      await waitFor(() => run.output().includes(`query could not listen on port ${adminPort}: it is already in use`), "the taken port named", 30_000);
      expect(run.output()).toContain(`Set QUERY_ADMIN_PORT to a free port, e.g.  QUERY_ADMIN_PORT=${adminPort + 100} npm start\n`);
      // A port the kernel picked lies in its range for outgoing connections: how to keep them off it is said too.
      expect(run.output()).toContain(`keep them off it by adding ${adminPort} to net.ipv4.ip_local_reserved_ports`);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    await waitFor(() => run.output().includes("query is running again"), "query started again once its port is free", 30_000);
    expect(queryAdminPort()).toBe(adminPort);

    // A stop while the gateway waits to be started again: everything stops, it is not started, and the run exits 0.
    const gateway = run.pidOf("gateway");
    process.kill(gateway, "SIGKILL");
    await waitFor(() => run.output().includes("gateway exited unexpectedly (killed by SIGKILL). Starting it again in 1 s."), "the gateway's restart wait");
    const pids = run.descendants();
    expect(await run.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(run.pidOf("gateway")).toBe(gateway);
    expect(pids.filter(isRunning)).toEqual([]);
    expect(run.output()).toContain("stopped; nothing left running");
  }));

test("npm start names the variable to set when a port it needs is taken, the gateway's admin port too", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-local-run-"));
  const taken = createServer();
  let run: LocalRun | undefined;
  try {
    const adminPort = await new Promise<number>((resolve, reject) => {
      taken.once("error", reject);
      taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port));
    });
    // The run's other ports were free when picked, but a test running beside this one may take one before
    // npm start binds it: then npm start names that port instead, and the run is tried again on new ports.
    for (let attempt = 1; ; attempt++) {
      await run?.[Symbol.asyncDispose]();
      const current = startLocalRun({ ...(await localRunEnv(dataDir)), GATEWAY_ADMIN_PORT: String(adminPort) });
      run = current;
      const ended = () => {
        current.descendants(); // noted, so that disposing the run kills whatever it left
        return current.ended();
      };
      await waitFor(ended, "npm start to exit", START_TIMEOUT_MS).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; it printed:\n${current.output()}`);
      });
      const named = /could not listen on port (\d+)/.exec(current.output())?.[1];
      if (named === undefined || Number(named) === adminPort || attempt === 3) break;
    }
    expect(run.child.exitCode).toBe(1);
    expect(run.output()).toContain(`gateway could not listen on port ${adminPort}: it is already in use`);
    expect(run.output()).toContain(`Set GATEWAY_ADMIN_PORT to a free port, e.g.  GATEWAY_ADMIN_PORT=${adminPort + 100} npm start`);
    expect(run.servicePids().filter(isRunning)).toEqual([]);
  } finally {
    await run?.[Symbol.asyncDispose]();
    await new Promise((resolve) => taken.close(resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
});


test("a data directory copied while npm start is stopped, and put back after what followed is lost, comes back as it was: its orders, stock and read models, and new orders go on", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-local-run-"));
  const backup = mkdtempSync(join(tmpdir(), "orderly-backup-"));
  try {
    const env = await localRunEnv(dataDir);
    const baseUrl = `http://127.0.0.1:${env.GATEWAY_PORT}`;
    const sku = DEMO_CATALOG[0]!.sku;
    /** Places an order of one unit as alice and waits until the read model has it; its id. */
    const placeOrder = async (): Promise<string> => {
      const tokens = JSON.parse(readFileSync(join(dataDir, "dev-tokens.json"), "utf8")) as { customers: Record<string, string> };
      const alice = { authorization: `Bearer ${tokens.customers.alice}` };
      const created = await api(baseUrl, "POST", "/v1/orders", { headers: alice, body: { customerId: "alice", items: [{ sku, quantity: 1 }] } });
      expect(created.status).toBe(200);
      const read = await api(baseUrl, "GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { headers: { ...alice, "x-request-timeout": "30000" } });
      expect(read.body.status).toBe("ORDER_STATUS_CONFIRMED");
      return created.body.id;
    };
    /**
     * What a client sees of orders (each one's status, or the HTTP status when there is none) and of the stock, straight
     * from the services, once the stock's read model has caught up with the inventory.
     */
    const seen = (ids: string[]) =>
      waitFor(async () => {
        const now = await seenNow(ids);
        return now.stock.join() === now.inventory.join() ? now : undefined;
      }, "the stock's read model to catch up with the inventory", 30_000);
    const seenNow = async (ids: string[]) => {
      const tokens = JSON.parse(readFileSync(join(dataDir, "dev-tokens.json"), "utf8")) as { admin: string };
      const headers = { authorization: `Bearer ${tokens.admin}`, "cache-control": "no-cache" };
      const orders = await Promise.all(ids.map(async (id) => {
        const r = await api(baseUrl, "GET", `/v1/orders/${id}`, { headers });
        return r.status === 200 ? r.body.status : r.status;
      }));
      const item = (await api(baseUrl, "GET", `/v1/inventory/${sku}`, { headers })).body;
      const stock = (await api(baseUrl, "GET", `/v1/stock/${sku}`, { headers })).body;
      return { orders, inventory: [item.available, item.reserved], stock: [stock.available, stock.reserved] };
    };

    let kept: string;
    let atBackup: Awaited<ReturnType<typeof seenNow>>;
    {
      await using run = startLocalRun(env);
      await waitUntilReady(run, baseUrl);
      kept = await placeOrder();
      atBackup = await seen([kept]);
      await stopCleanly(run);
    }
    // The README's backup: the whole data directory, copied while nothing runs.
    execFileSync("cp", ["-a", `${dataDir}/.`, backup]);
    let lost: string;
    {
      await using run = startLocalRun(env);
      await waitUntilReady(run, baseUrl);
      lost = await placeOrder();
      await stopCleanly(run);
    }
    // The README's restore: the copy in place of the data directory.
    rmSync(dataDir, { recursive: true, force: true });
    execFileSync("cp", ["-a", backup, dataDir]);
    {
      await using run = startLocalRun(env);
      await waitUntilReady(run, baseUrl);
      expect(await seen([kept, lost])).toEqual({ ...atBackup, orders: ["ORDER_STATUS_CONFIRMED", 404] });
      // New orders go on and reach the read models, and the read models are what the restored events make.
      const next = await placeOrder();
      const after = await seen([kept, next]);
      expect(after.orders).toEqual(["ORDER_STATUS_CONFIRMED", "ORDER_STATUS_CONFIRMED"]);
      expect(after.inventory).toEqual([atBackup.inventory[0]! - 1, atBackup.inventory[1]! + 1]);
      expect((await runRebuild(env)).stdout).toContain("the rebuilt read models equal the live ones");
      await stopCleanly(run);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(backup, { recursive: true, force: true });
  }
});
