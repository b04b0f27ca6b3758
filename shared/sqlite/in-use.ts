import Database from "better-sqlite3";
import { dirname } from "node:path";
import { ConfigError } from "../config/env.js";
import { keepToOwner, makeOwnersDir } from "../fs/index.js";
import { storageRefusal } from "./storage-errors.js";

/**
 * Whether another connection has the database file open (a running service):
 * an open WAL-mode connection holds a shared lock on the file for as long as
 * it is open, so an exclusive lock, asked for without waiting, is refused.
 * False for a file that does not exist (it is not created).
 */
export function inUse(file: string): boolean {
  let held: Database.Database | undefined;
  try {
    held = holdExclusively(file, { create: false });
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_CANTOPEN") return false;
    throw error;
  }
  held?.close();
  return held === undefined;
}

/**
 * Holds `file` (a database made for the purpose, created when missing unless
 * `create` is false) as this process's alone: an exclusive lock, kept until
 * the returned connection is closed or the process ends (the OS drops it
 * then, whatever the way it ended). Undefined when another connection has it
 * open.
 */
export function holdExclusively(file: string, { create = true } = {}): Database.Database | undefined {
  const db = new Database(file, { timeout: 0, fileMustExist: !create });
  try {
    // Empty, but the owner's alone as the databases are (its journal takes its mode).
    keepToOwner(file);
    // A file made for the purpose (a lock) keeps its journal in memory: it stays empty, and holding it writes nothing,
    // so a full disk does not keep a service from starting (its own database then refuses writes with 503s until there
    // is room). A database only looked at (inUse) keeps its own mode: a WAL one would be taken out of WAL.
    if (create) db.pragma("journal_mode = MEMORY");
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === "SQLITE_BUSY") return undefined;
    throw error;
  }
}

/**
 * Claims a service's database file for this process, its one writer (every
 * SQLite file has one: DESIGN.md): holds `<file>.lock` exclusively (see
 * holdExclusively) until `release` is called or the process ends, however it
 * ends. Throws, naming the file, while another process holds it: a second
 * instance started on the same data directory would run a second outbox
 * relay, recovery loop or set of consumers over the same rows.
 */
export function claimSoleWriter(file: string, service: string): { release(): void } {
  makeOwnersDir(dirname(file));
  let lock: Database.Database | undefined;
  try {
    lock = holdExclusively(`${file}.lock`);
  } catch (error) {
    throw storageRefusal(`${file}.lock`, error) ?? error;
  }
  if (lock === undefined) {
    throw new ConfigError(`${file} is held by another process, its one writer (is the ${service} service running on it?): stop that process first, or use another data directory`);
  }
  return { release: () => lock.close() };
}
