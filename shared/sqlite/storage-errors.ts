import { ConfigError } from "../config/env.js";
import { OrderlyError } from "../errors/index.js";

/**
 * SQLite's codes for a database it cannot write or read now: the disk full,
 * an I/O error, a file made read-only or gone, a lock held past busy_timeout.
 * They pass when the storage recovers; nothing about the request is wrong.
 */
const UNAVAILABLE_STORAGE = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|PROTOCOL)(_|$)/;

/**
 * The error a client gets for a SQLite error that says the storage is
 * failing (see UNAVAILABLE_STORAGE): UNAVAILABLE with STORAGE_UNAVAILABLE,
 * retried after a few seconds; undefined for any other error. The cause keeps
 * SQLite's error for the log; the message says nothing of it.
 */
export function storageError(error: unknown): OrderlyError | undefined {
  if (storageCode(error) === undefined) return undefined;
  return new OrderlyError("STORAGE_UNAVAILABLE", "the service cannot use its storage now; retry later (with the same Idempotency-Key, for a write)", {
    metadata: { retryAfterSeconds: "5" },
    cause: error,
  });
}

/**
 * What a process that cannot open its database says as it stops, for a
 * SQLite error that says the storage is failing (see UNAVAILABLE_STORAGE):
 * one line naming the file, SQLite's code and what to do, not a stack;
 * undefined for any other error.
 */
export function storageRefusal(file: string, error: unknown): ConfigError | undefined {
  const code = storageCode(error);
  // A lock held by another process (BUSY, LOCKED) is no matter of room or permissions: its own error says so.
  if (code === undefined || /^SQLITE_(BUSY|LOCKED)/.test(code)) return undefined;
  const reason = error instanceof Error ? error.message : String(error);
  return new ConfigError(`${file}: cannot use its storage (${code}: ${reason}): free space on its disk, or make it writable, then start the service again`, { cause: error });
}

/** SQLite's code of an error that says the storage is failing, or undefined. */
function storageCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && UNAVAILABLE_STORAGE.test(code) ? code : undefined;
}
