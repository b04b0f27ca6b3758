import Database from "better-sqlite3";
import { dirname } from "node:path";
import { ConfigError } from "../config/env.js";
import { keepToOwner, makeOwnersDir } from "../fs/index.js";
import { storageRefusal } from "./storage-errors.js";

/** A better-sqlite3 database handle. */
export type Db = Database.Database;

/** One schema step; migrations run in order and each exactly once (PRAGMA user_version). */
export type Migration = string;

/**
 * How large a WAL file is left after it starts over (bytes). Under a burst
 * the WAL grows past this (the service's connection checkpoints only past
 * 16,384 pages, ~64 MiB: background-checkpoints.ts); without a limit SQLite
 * keeps the file at its high-water mark for good.
 */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;

/** How to open a database file. */
export interface OpenDatabaseOptions {
  /** A file path, or ":memory:" in unit tests. */
  file: string;
  /** The schema, as an ordered list of SQL scripts. */
  migrations: readonly Migration[];
  /** How long a writer waits for a lock held by another connection (ms). */
  busyTimeoutMs?: number;
  /** PRAGMA synchronous: NORMAL survives process crashes in WAL mode; FULL also power loss. */
  synchronous?: "NORMAL" | "FULL";
  /**
   * Page cache of the connection (MiB; SQLite's default is 2) and how much of
   * the file is read through a memory map instead of read() calls (MiB; 0,
   * SQLite's default, reads everything with read()). Reads that scatter over
   * a large file (a customer's orders among a million) stay fast with both.
   */
  cacheMiB?: number;
  mmapMiB?: number;
}

/**
 * Opens (creating when missing) a SQLite database in WAL mode and brings its
 * schema up to date, each migration in its own transaction. Storage that
 * fails as it opens (the disk full) is a ConfigError naming the file.
 */
export function openDatabase(options: OpenDatabaseOptions): Db {
  try {
    return openAndMigrate(options);
  } catch (error) {
    // The disk full, say: one line that says so, not a stack.
    throw storageRefusal(options.file, error) ?? error;
  }
}

function openAndMigrate(options: OpenDatabaseOptions): Db {
  const onDisk = options.file !== ":memory:";
  // Every customer's orders are in these files: readable by their owner only (a folder made for them likewise), also
  // what an older Orderly made 0644. The database first: SQLite gives the -wal and -shm files it makes the database's
  // mode. A folder that exists is the user's choice (ORDERLY_DATA_DIR) and is left as it is.
  if (onDisk) makeOwnersDir(dirname(options.file));
  const db = new Database(options.file);
  if (onDisk) keepToOwner(options.file);
  try {
    // The first read of the file: a file that is no database (or a damaged one) says so here.
    db.pragma("journal_mode = WAL");
  } catch (error) {
    db.close();
    const code = (error as { code?: unknown }).code;
    if (code !== "SQLITE_NOTADB" && code !== "SQLITE_CORRUPT") throw error;
    throw new ConfigError(`${options.file} is not a SQLite database, or is damaged (${code}): restore it from a backup, or move it away to start empty`, { cause: error });
  }
  if (onDisk) for (const suffix of ["-wal", "-shm"]) keepToOwner(options.file + suffix);
  db.pragma(`synchronous = ${options.synchronous ?? "NORMAL"}`);
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  db.pragma("foreign_keys = ON");
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  if (options.cacheMiB !== undefined) db.pragma(`cache_size = ${-Math.round(options.cacheMiB * 1024)}`);
  if (options.mmapMiB !== undefined) db.pragma(`mmap_size = ${Math.round(options.mmapMiB * 1024 * 1024)}`);
  try {
    migrate(db, options.file, options.migrations);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}


function migrate(db: Db, file: string, migrations: readonly Migration[]): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > migrations.length) {
    throw new ConfigError(
      `${file}: database schema version ${current} is newer than this code knows (${migrations.length}): a newer Orderly migrated it. ` +
        "Run that version, or this one on the copy of the data directory made before the upgrade (README: Upgrading)",
    );
  }
  for (let version = current; version < migrations.length; version++) {
    db.transaction(() => {
      db.exec(migrations[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
