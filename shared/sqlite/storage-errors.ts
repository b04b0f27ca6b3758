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
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !UNAVAILABLE_STORAGE.test(code)) return undefined;
  return new OrderlyError("STORAGE_UNAVAILABLE", "the service cannot use its storage now; retry later (with the same Idempotency-Key, for a write)", {
    metadata: { retryAfterSeconds: "5" },
    cause: error,
  });
}
