import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { openDatabase } from "./open-database.js";

test("a database file, its WAL and its shared memory are readable by their owner only, in a directory made for them likewise", () => {
  using temp = tempDir("orderly-db-mode-");
  const dir = temp.path;
  const file = join(dir, "data", "x.db");
  const db = openDatabase({ file, migrations: ["CREATE TABLE t (x INTEGER)"] });
  db.prepare("INSERT INTO t VALUES (1)").run();
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
  expect([mode(file), mode(`${file}-wal`), mode(`${file}-shm`), mode(join(dir, "data"))]).toEqual(["600", "600", "600", "700"]);
  db.close();
});

test("a database an older version left readable by others (0644) is its owner's alone once opened, its data kept", () => {
  using temp = tempDir("orderly-db-mode-");
  const dir = temp.path;
  const file = join(dir, "x.db");
  const before = openDatabase({ file, migrations: ["CREATE TABLE t (x INTEGER)"] });
  before.prepare("INSERT INTO t VALUES (1)").run();
  before.close();
  chmodSync(file, 0o644);
  chmodSync(dir, 0o755);
  const db = openDatabase({ file, migrations: ["CREATE TABLE t (x INTEGER)"] });
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
  // The folder is the user's (ORDERLY_DATA_DIR): left as it is.
  expect([mode(dir), mode(file), mode(`${file}-wal`), mode(`${file}-shm`)]).toEqual(["755", "600", "600", "600"]);
  expect(db.prepare("SELECT x FROM t").all()).toEqual([{ x: 1 }]);
  db.close();
});

test("a file that is no database is refused with a message naming it, and left as it was", () => {
  using temp = tempDir("orderly-db-garbage-");
  const file = join(temp.path, "inventory.db");
  const garbage = Buffer.alloc(8192, 0x5a);
  writeFileSync(file, garbage);
  expect(() => openDatabase({ file, migrations: ["CREATE TABLE t (x INTEGER)"] })).toThrow(`${file} is not a SQLite database, or is damaged (SQLITE_NOTADB)`);
  expect(readFileSync(file).equals(garbage)).toBe(true);
});

test("a database a newer version migrated is refused with a message naming the file and what to do, and left as it was", () => {
  using temp = tempDir("orderly-db-newer-");
  const file = join(temp.path, "order.db");
  const migrations = ["CREATE TABLE t (x INTEGER)", "ALTER TABLE t ADD COLUMN y INTEGER"];
  openDatabase({ file, migrations }).close();
  expect(() => openDatabase({ file, migrations: migrations.slice(0, 1) })).toThrow(
    `${file}: database schema version 2 is newer than this code knows (1): a newer Orderly migrated it. Run that version, or this one on the copy of the data directory made before the upgrade`,
  );
  // Still the newer version's: a refused open changes nothing, and the newer code opens it.
  const again = openDatabase({ file, migrations });
  expect(again.pragma("user_version", { simple: true })).toBe(2);
  again.close();
});
