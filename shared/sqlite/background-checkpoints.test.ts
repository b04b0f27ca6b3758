import { mkdtempSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { silentLogger } from "../logging/index.js";
import { startBackgroundCheckpoints } from "./background-checkpoints.js";
import { openDatabase, type Db } from "./open-database.js";

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

/** Commits `count` transactions of one 4 KiB row each, in bursts of 50 with a pause after each. */
async function write(db: Db, count: number, pauseMs: number): Promise<void> {
  const insert = db.prepare("INSERT INTO pages (body) VALUES (?)");
  for (let i = 1; i <= count; i++) {
    insert.run(Buffer.alloc(4096, i % 256));
    if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

test("the worker checkpoints the WAL while the service's connection does not, so the WAL starts over instead of growing", async () => {
  const { db, file } = fileDatabase();
  // The service's connection would checkpoint only past a million pages: every checkpoint here is the worker's.
  const checkpoints = await startBackgroundCheckpoints(db, silentLogger(), { intervalMs: 10, walPages: 1_000_000 });
  expect(autocheckpoint(db)).toBe(1_000_000);
  // ~60 MiB written (a 4 KiB row takes about three pages); the WAL would hold all of it without a checkpoint.
  await write(db, 5000, 60);
  expect(walBytes(file)).toBeLessThan(10 * 1024 * 1024);
  await checkpoints.close();
  expect(autocheckpoint(db)).toBe(1000);
  expect(db.prepare("SELECT count(*) FROM pages").pluck().get()).toBe(5000);
  db.close();
});

test("a worker that cannot open the database leaves checkpoints to SQLite, and says so", async () => {
  const { db, file } = fileDatabase();
  // The service's connection keeps the unlinked file open; the worker finds no file to open.
  unlinkSync(file);
  const warnings: string[] = [];
  const logger = silentLogger();
  logger.warn = ((_: unknown, message: string) => void warnings.push(message)) as typeof logger.warn;
  const checkpoints = await startBackgroundCheckpoints(db, logger, { intervalMs: 10 });
  expect(autocheckpoint(db)).toBe(1000);
  expect(warnings).toEqual(["background checkpoints stopped; SQLite checkpoints on commit again"]);
  await checkpoints.close();
  db.close();
});
