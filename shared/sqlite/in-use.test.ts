import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { ConfigError } from "../config/env.js";
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
  // The check changed nothing and took no lock it kept: the owner goes on writing, its file still in WAL mode.
  db.prepare("INSERT INTO t VALUES (2)").run();
  expect(db.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 2 });
  db.close();
  expect(inUse(file)).toBe(false);
  // Nor did a check of the closed file take it out of WAL mode (bytes 18 and 19 of its header: 2 for WAL).
  expect([...readFileSync(file).subarray(18, 20)]).toEqual([2, 2]);
});

test("a database has one writer: a second claim is refused, naming the file, until the first is released", () => {
  using temp = tempDir("orderly-writer-");
  const dir = temp.path;
  const file = join(dir, "data", "order.db");
  const first = claimSoleWriter(file, "order");
  // The lock file (and its journal) are the owner's alone, as every file Orderly makes.
  const modes = readdirSync(join(dir, "data")).map((name) => [name, (statSync(join(dir, "data", name)).mode & 0o777).toString(8)]);
  // No journal beside it: the lock keeps its journal in memory, and writes nothing (a full disk does not stop it).
  expect(modes).toEqual([["order.db.lock", "600"]]);
  expect(() => claimSoleWriter(file, "order")).toThrow(`${file} is held by another process, its one writer (is the order service running on it?)`);
  first.release();
  claimSoleWriter(file, "order").release();
});

/** Whether this process may mount a tmpfs (root, with the capability): the one way to fill a disk for real without filling the machine's. */
function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  using probe = tempDir("orderly-mount-probe-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path], { stdio: "ignore" });
    execFileSync("umount", [probe.path], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test.runIf(canMount())("on a full disk a service still claims its database, and one that cannot open it says so in one line: the disk, not a stack", () => {
  using temp = tempDir("orderly-full-disk-");
  const disk = temp.path;
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]);
  try {
    const file = join(disk, "data", "order.db");
    const made = openDatabase({ file, migrations: ["CREATE TABLE t (x)"] });
    made.prepare("INSERT INTO t VALUES (1)").run();
    made.close();
    // Every block taken.
    const ballast = join(disk, "ballast");
    try {
      for (let i = 0; ; i++) writeFileSync(`${ballast}-${i}`, Buffer.alloc(16 * 1024));
    } catch (error) {
      expect((error as { code?: string }).code).toBe("ENOSPC");
    }
    const writer = claimSoleWriter(file, "order");
    expect(() => claimSoleWriter(file, "order")).toThrow("is held by another process");
    const refusal = (() => {
      try {
        openDatabase({ file, migrations: ["CREATE TABLE t (x)"] });
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as Error).message).toMatch(new RegExp(`^${file}: cannot use its storage \\(SQLITE_(FULL|IOERR)\\w*: .+\\): free space on its disk, or make it writable, then start the service again$`));
    // Room again: the same file opens, its row there.
    for (const name of readdirSync(disk)) if (name.startsWith("ballast")) rmSync(join(disk, name));
    const db = openDatabase({ file, migrations: ["CREATE TABLE t (x)"] });
    expect(db.prepare("SELECT x FROM t").pluck().all()).toEqual([1]);
    db.close();
    writer.release();
  } finally {
    execFileSync("umount", ["-l", disk]);
  }
});
