import { execFileSync } from "node:child_process";
import { isMainThread } from "node:worker_threads";
import { mkdtempSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { waitFor } from "../../test/helpers/processes.js";
import { silentLogger } from "../logging/index.js";
import { startBackgroundCheckpoints, type BackgroundCheckpoints } from "./background-checkpoints.js";
import { openDatabase, WAL_SIZE_LIMIT_BYTES, type Db } from "./open-database.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fileDatabase(): { db: Db; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "orderly-checkpoints-"));
  dirs.push(dir);
  const file = join(dir, "test.db");
  return { db: openDatabase({ file, migrations: ["CREATE TABLE pages (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"] }), file };
}

const walBytes = (file: string) => statSync(`${file}-wal`).size;
const autocheckpoint = (db: Db) => db.pragma("wal_autocheckpoint", { simple: true });

/** Commits `count` transactions of one 4 KiB row each. */
function write(db: Db, count: number): void {
  const insert = db.prepare("INSERT INTO pages (body) VALUES (?)");
  for (let i = 1; i <= count; i++) insert.run(Buffer.alloc(4096, i % 256));
}

/** Asks the worker to checkpoint (again until it has) and waits until every frame is copied into the database file. */
async function checkpointEverything(checkpoints: BackgroundCheckpoints): Promise<void> {
  await waitFor(() => {
    const latest = checkpoints.latest;
    if (latest !== undefined && latest.log > 0 && latest.checkpointed === latest.log) return true;
    checkpoints.checkpointNow();
    return false;
  }, "the worker's checkpoint of every frame");
}

test("the worker checkpoints the WAL while the service's connection does not, so the WAL starts over instead of growing", async () => {
  const { db, file } = fileDatabase();
  // The service's connection would checkpoint only past a million pages, and the worker only when asked: every checkpoint here is the one asked for.
  const checkpoints = await startBackgroundCheckpoints(db, silentLogger(), { startWaitMs: 60_000, intervalMs: 3_600_000, walPages: 1_000_000 });
  expect(autocheckpoint(db)).toBe(1_000_000);
  // ~6 MiB into the WAL (a 4 KiB row takes about three pages).
  write(db, 500);
  const walAfterFirst = walBytes(file);
  // The worker, asked, copies every frame into the database file.
  await checkpointEverything(checkpoints);
  expect(statSync(file).size).toBeGreaterThan(500 * 4096);
  // So the next writes start the WAL over instead of appending to it: the file does not grow (it would double).
  write(db, 500);
  expect(walBytes(file)).toBeLessThanOrEqual(walAfterFirst);
  await checkpoints.close();
  expect(autocheckpoint(db)).toBe(1000);
  expect(db.prepare("SELECT count(*) FROM pages").pluck().get()).toBe(1000);
  db.close();
});

test("an idle WAL is looked at less often, down to once a second, and writes after the idle time are still copied without asking", async () => {
  const { db, file } = fileDatabase();
  // Only the worker's own checkpoints copy frames here: the service's connection would wait for a million pages.
  const checkpoints = await startBackgroundCheckpoints(db, silentLogger(), { startWaitMs: 60_000, intervalMs: 10, walPages: 1_000_000 });
  // One request at a time, so none is still on its way when the wait is seen (it would copy the writes below itself).
  let answered = checkpoints.latest;
  let asking = false;
  const waitingMs = async (wanted: number, what: string) =>
    waitFor(() => {
      if (asking && checkpoints.latest !== answered) asking = false;
      if (!asking && checkpoints.latest?.waitMs === wanted) return true;
      if (!asking) {
        answered = checkpoints.latest;
        asking = true;
        checkpoints.checkpointNow();
      }
      return false;
    }, what);
  await waitingMs(1000, "the idle worker to wait a second");
  const before = statSync(file).size;
  write(db, 100);
  // Not asked: the worker's own next look (within the second) copies them.
  await waitFor(() => statSync(file).size >= before + 100 * 4096, "the worker's own checkpoint of the new writes");
  await checkpoints.close();
  db.close();
});

test("after a burst, the WAL file is cut back to its size limit when it starts over", async () => {
  const { db, file } = fileDatabase();
  const checkpoints = await startBackgroundCheckpoints(db, silentLogger(), { startWaitMs: 60_000, intervalMs: 3_600_000, walPages: 1_000_000 });
  // ~24 MiB into the WAL.
  write(db, 2000);
  expect(walBytes(file)).toBeGreaterThan(WAL_SIZE_LIMIT_BYTES);
  await checkpointEverything(checkpoints);
  // The next commit starts the WAL over and truncates the file.
  write(db, 1);
  expect(walBytes(file)).toBeLessThanOrEqual(WAL_SIZE_LIMIT_BYTES);
  await checkpoints.close();
  db.close();
});

test("a worker that cannot open the database leaves checkpoints to SQLite, and says so", async () => {
  const { db, file } = fileDatabase();
  // The service's connection keeps the unlinked file open; the worker finds no file to open.
  unlinkSync(file);
  const warnings: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_: unknown, message: string) => void warnings.push(message)) as typeof logger.warn;
  const checkpoints = await startBackgroundCheckpoints(db, logger, { startWaitMs: 60_000, intervalMs: 10 });
  expect(autocheckpoint(db)).toBe(1000);
  expect(warnings).toEqual(["background checkpoints stopped; SQLite checkpoints on commit again"]);
  await checkpoints.close();
  db.close();
});

test("a start that does not wait for its worker (a first checkpoint of a large WAL, a slow disk) goes on, and the worker takes over once ready", async () => {
  const { db } = fileDatabase();
  write(db, 200);
  const checkpoints = await startBackgroundCheckpoints(db, silentLogger(), { startWaitMs: 0, intervalMs: 3_600_000, walPages: 1_000_000 });
  // Until the worker is ready, SQLite's own threshold; then the worker's.
  await waitFor(() => autocheckpoint(db) === 1_000_000, "the worker ready");
  await checkpointEverything(checkpoints);
  await checkpoints.close();
  expect(autocheckpoint(db)).toBe(1000);
  db.close();
});

/** The soft limit on the size of a file this process writes (RLIMIT_FSIZE, bytes or "unlimited"), read or set with util-linux's prlimit. */
const fileSizeLimit = {
  get: () => execFileSync("prlimit", ["--pid", String(process.pid), "--fsize", "--output=SOFT", "--noheadings", "--raw"], { encoding: "utf8" }).trim(),
  set: (soft: string | number) => {
    // The limit is the whole process's: only in a test process of this file's own (vitest's forks pool), never one that runs other files.
    if (typeof process.send !== "function" || !isMainThread) throw new Error("a file-size limit needs a forked test process of its own (vitest --pool=forks)");
    execFileSync("prlimit", ["--pid", String(process.pid), `--fsize=${soft}:`]);
  },
};

test("a worker that fails mid-run (its database file cannot grow) is started again once the file can, and the WAL is checkpointed off the event loop again", async () => {
  const { db, file } = fileDatabase();
  // Each line with the connection's threshold when it was written (a new worker may be running by the time the test looks).
  const lines: { msg: string; code?: string; autocheckpoint?: unknown }[] = [];
  const logger = silentLogger();
  logger.warn = ((fields: { err?: { code?: string } }, msg: string) => void lines.push({ msg, code: fields.err?.code, autocheckpoint: autocheckpoint(db) })) as typeof logger.warn;
  logger.info = ((_: unknown, msg: string) => void lines.push({ msg })) as typeof logger.info;
  const checkpoints = await startBackgroundCheckpoints(db, logger, { startWaitMs: 60_000, intervalMs: 3_600_000, walPages: 1_000_000, restartAfterMs: 20 });
  // ~2.4 MiB in the WAL and none of it in the database file yet.
  write(db, 200);
  const unlimited = fileSizeLimit.get();
  try {
    // The database file cannot grow now (EFBIG, as a full disk's ENOSPC): the worker's checkpoint fails and ends it.
    fileSizeLimit.set(statSync(file).size);
    checkpoints.checkpointNow();
    await waitFor(() => lines.length > 0, "the worker's failure");
  } finally {
    fileSizeLimit.set(unlimited);
  }
  // A new worker takes over: the connection's threshold is the worker's again, and the worker copies the WAL when asked.
  await waitFor(() => autocheckpoint(db) === 1_000_000, "a new worker");
  await checkpointEverything(checkpoints);
  expect(statSync(file).size).toBeGreaterThan(200 * 4096);
  expect(lines).toEqual([
    { msg: "background checkpoints stopped; SQLite checkpoints on commit again", code: "SQLITE_IOERR_WRITE", autocheckpoint: 1000 },
    { msg: "background checkpoints resumed" },
  ]);
  await checkpoints.close();
  expect(autocheckpoint(db)).toBe(1000);
  db.close();
});

test("workers started again while the file still cannot grow fail before the connection counts on them: no word of resuming until one can", async () => {
  const { db, file } = fileDatabase();
  const lines: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_: unknown, msg: string) => void lines.push(msg)) as typeof logger.warn;
  logger.info = ((_: unknown, msg: string) => void lines.push(msg)) as typeof logger.info;
  const checkpoints = await startBackgroundCheckpoints(db, logger, { startWaitMs: 60_000, intervalMs: 10, walPages: 1_000_000, restartAfterMs: 10 });
  // A database file of ~1.6 MiB and a WAL copied into it, which the next commit starts over.
  write(db, 200);
  await checkpointEverything(checkpoints);
  const unlimited = fileSizeLimit.get();
  try {
    // No file grows past the database's size now: new frames still fit in the WAL, but every worker's checkpoint must grow the database file to copy them.
    fileSizeLimit.set(statSync(file).size);
    write(db, 50);
    await waitFor(() => checkpoints.failures >= 3, "workers failing again");
    expect(autocheckpoint(db)).toBe(1000);
    expect(lines).toEqual(["background checkpoints stopped; SQLite checkpoints on commit again"]);
  } finally {
    fileSizeLimit.set(unlimited);
  }
  await waitFor(() => autocheckpoint(db) === 1_000_000, "a new worker");
  expect(lines.at(-1)).toBe("background checkpoints resumed");
  await checkpoints.close();
  db.close();
});
