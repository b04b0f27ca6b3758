import Database from "better-sqlite3";

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
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === "SQLITE_BUSY") return undefined;
    throw error;
  }
}
