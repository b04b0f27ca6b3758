import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { claimSoleWriter, inUse } from "./in-use.js";
import { openDatabase } from "./open-database.js";

test("a database file is in use while a connection has it open, and not once it is closed or when it does not exist", () => {
  using temp = tempDir("orderly-in-use-");
  const dir = temp.path;
  const file = join(dir, "x.db");
  expect([inUse(file), existsSync(file)]).toEqual([false, false]);
  const db = openDatabase({ file, migrations: ["CREATE TABLE t (x INTEGER)"] });
  db.prepare("INSERT INTO t VALUES (1)").run();
  expect(inUse(file)).toBe(true);
  // The check changed nothing and took no lock it kept: the owner goes on writing.
  db.prepare("INSERT INTO t VALUES (2)").run();
  expect(db.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 2 });
  db.close();
  expect(inUse(file)).toBe(false);
});

test("a database has one writer: a second claim is refused, naming the file, until the first is released", () => {
  using temp = tempDir("orderly-writer-");
  const dir = temp.path;
  const file = join(dir, "data", "order.db");
  const first = claimSoleWriter(file, "order");
  // The lock file (and its journal) are the owner's alone, as every file Orderly makes.
  const modes = readdirSync(join(dir, "data")).map((name) => [name, (statSync(join(dir, "data", name)).mode & 0o777).toString(8)]);
  expect(modes).toEqual([["order.db.lock", "600"], ...(modes.length > 1 ? [["order.db.lock-journal", "600"]] : [])]);
  expect(() => claimSoleWriter(file, "order")).toThrow(`${file} is held by another process, its one writer (is the order service running on it?)`);
  first.release();
  claimSoleWriter(file, "order").release();
});
