import { createRequire } from "node:module";
import { setTimeout as delay } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import type { Logger } from "../logging/index.js";
import type { Db } from "./open-database.js";

/** When checkpoints happen. */
export interface BackgroundCheckpointOptions {
  /** How often the worker copies the WAL into the database file while it grows (ms); an idle WAL is looked at less often, down to once a second. */
  intervalMs?: number;
  /**
   * The WAL length (pages) at which the service's own connection checkpoints
   * after a commit, as SQLite does at 1000 by default. The worker cannot start
   * the WAL over while writes never pause (it always finds newer pages than
   * it copied), so the connection still does, this much less often; by then
   * the worker has copied and synced nearly all of it.
   */
  walPages?: number;
  /** How long after the worker fails a new one is started (ms); twice as long after each one that fails again, up to a minute. */
  restartAfterMs?: number;
  /** How long the start waits for the first worker to be ready before going on without it (ms); 2 s by default. */
  startWaitMs?: number;
}

/** SQLite's own auto-checkpoint threshold (pages), restored when the worker cannot run. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

/** The longest wait before a new worker is started after one failed (ms). */
const RESTART_MAX_WAIT_MS = 60_000;
/** How long a worker must have run for the wait before the next one to start over from restartAfterMs (ms). */
const RESTART_RESET_AFTER_MS = 60_000;
/** Workers failed in a row between two "still failing" warnings (the first failure is warned of at once). */
const FAILURES_PER_WARNING = 10;
/** How long a start waits for the first worker (its first checkpoint copies what a crash left in the WAL) before going on without it (ms). */
const START_WAIT_MS = 2000;

/**
 * The worker: its own connection to the same file and a PASSIVE checkpoint
 * every interval (it copies what it can of the WAL into the database file and
 * syncs it, never waiting for or blocking the service's connection), and a
 * last one when asked to stop. While the WAL stays as it was (an idle
 * service), the wait doubles up to a second: an idle service's worker woke
 * 20 times a second, about a third of the service's idle CPU. The first look
 * after writes resume brings it back to the interval. CommonJS, evaluated in
 * the worker, so it needs no loader.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
// A short busy timeout: the worker never has a reason to wait long for a lock.
const db = new Database(workerData.file, { fileMustExist: true, timeout: 100 });
const statement = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
// A lock not had within the busy timeout counts as busy: the next interval tries again. Anything else ends the worker,
// as a plain Error: better-sqlite3's SqliteError reaches the parent as its code alone, without its message.
const checkpoint = () => {
  try {
    return statement.get();
  } catch (error) {
    if (error.code !== "SQLITE_BUSY") throw Object.assign(new Error(error.message), { code: error.code });
    return { busy: 1 };
  }
};
const IDLE_MAX_MS = Math.max(1000, workerData.intervalMs);
let delay = workerData.intervalMs;
let seen;
let timer;
const tick = () => {
  const { busy, log, checkpointed } = checkpoint();
  const idle = !busy && seen !== undefined && log === seen.log && checkpointed === seen.checkpointed;
  seen = busy ? undefined : { log, checkpointed };
  delay = idle ? Math.min(IDLE_MAX_MS, delay * 2) : workerData.intervalMs;
  timer = setTimeout(tick, delay);
};
timer = setTimeout(tick, delay);
parentPort.on("message", (message) => {
  // Asked how far it gets: the WAL's length and how much of it is in the database file (-1: busy, the service's connection was checkpointing), and its wait now.
  if (message === "checkpoint") {
    const { busy, log, checkpointed } = checkpoint();
    return parentPort.postMessage(busy ? { log: -1, checkpointed: -1, waitMs: delay } : { log, checkpointed, waitMs: delay });
  }
  clearTimeout(timer);
  try { checkpoint(); } finally { db.close(); parentPort.close(); }
});
// A first checkpoint before it says it is ready: one started again while the storage still fails ends here, before the
// service's connection counts on it (it would say it resumed, then fail at its first look). One that finds the service's
// connection checkpointing (busy) tells nothing: tried again, for up to a second.
const pause = new Int32Array(new SharedArrayBuffer(4));
for (let tries = 0; checkpoint().busy && tries < 20; tries++) Atomics.wait(pause, 0, 0, 50);
parentPort.postMessage("ready");
`;

/** What a checkpoint asked of the worker found: the WAL's length and how much of it is in the database file (pages; -1 when it could not run). */
export interface CheckpointProgress {
  log: number;
  checkpointed: number;
  /** How long the worker now waits between its own checkpoints (ms): the interval while the WAL grows, up to a second while it does not. */
  waitMs: number;
}

/** A running background checkpointer. */
export interface BackgroundCheckpoints {
  /** What the latest checkpoint asked for found (undefined before one is done). */
  readonly latest: CheckpointProgress | undefined;
  /** How many workers have failed (at their start or later) since this started. */
  readonly failures: number;
  /** Asks the worker for a checkpoint now, besides its interval; `latest` shows it once done. */
  checkpointNow(): void;
  /** Stops the worker after a last checkpoint and gives checkpoints back to SQLite; call before closing the database. */
  close(): Promise<void>;
}

/**
 * Moves most of a database's WAL checkpointing off the event loop. By default
 * SQLite checkpoints inside the commit that takes the WAL past 1000 pages:
 * that commit copies the WAL into the database file and, with
 * synchronous=NORMAL, syncs both files, on the event loop. Here a worker
 * thread with its own connection copies and syncs every `intervalMs`, and
 * the service's connection checkpoints only past `walPages`, finding little
 * left to do. If the worker cannot start or fails (a full disk, an I/O
 * error), the connection goes back to SQLite's own threshold and a new worker
 * is started after `restartAfterMs`, then twice as long while they keep
 * failing, up to a minute: once the storage recovers, so do the checkpoints.
 * better-sqlite3 has no asynchronous checkpoint, hence the worker.
 */
export async function startBackgroundCheckpoints(db: Db, logger: Logger, options: BackgroundCheckpointOptions = {}): Promise<BackgroundCheckpoints> {
  const intervalMs = options.intervalMs ?? 50;
  const walPages = options.walPages ?? 16_384;
  const restartAfterMs = options.restartAfterMs ?? 1000;
  // An in-memory database has no WAL to checkpoint (and a second connection would open another one).
  if (db.memory) return { latest: undefined, failures: 0, checkpointNow() {}, close: () => Promise.resolve() };
  let closing = false;
  /** A worker: whether it said it is ready, whether it has ended (failed or stopped), and a promise of its exit. */
  interface Running {
    worker: Worker;
    ready: boolean;
    ended: boolean;
    exited: Promise<void>;
  }
  /** The newest worker, and every worker not yet exited (one that failed may still be exiting as the next starts). */
  let current: Running | undefined;
  const live = new Set<Running>();
  /** Whether the connection checkpoints on its own now (SQLite's threshold), the worker having failed. */
  let fallenBack = false;
  let restartWaitMs = restartAfterMs;
  let restartTimer: NodeJS.Timeout | undefined;
  let latest: CheckpointProgress | undefined;
  let failures = 0;
  let failuresInRow = 0;

  /** Back to SQLite's own checkpoints when a worker fails (not when it was asked to stop), said once and then every FAILURES_PER_WARNING; a new one later. */
  const failOver = (error: unknown, readySince: number | undefined) => {
    if (closing) return;
    failures++;
    failuresInRow++;
    if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    // A worker that ran a while starts the waits over; one that keeps failing (a disk still full) is tried less often.
    const ranMs = readySince === undefined ? 0 : Date.now() - readySince;
    const waitMs = ranMs >= RESTART_RESET_AFTER_MS ? restartAfterMs : restartWaitMs;
    restartWaitMs = Math.min(RESTART_MAX_WAIT_MS, waitMs * 2);
    if (!fallenBack) {
      fallenBack = true;
      failuresInRow = 1;
      logger.warn({ err: error, file: db.name, retryInMs: waitMs }, "background checkpoints stopped; SQLite checkpoints on commit again");
    } else if (failuresInRow % FAILURES_PER_WARNING === 0) {
      logger.warn({ err: error, file: db.name, failuresInRow, retryInMs: waitMs }, "background checkpoints still failing; SQLite checkpoints on commit");
    }
    restartTimer = setTimeout(() => void start(), waitMs);
    restartTimer.unref();
  };

  /** Starts a worker; resolves once it is ready (true) or has failed (false). */
  const start = (): Promise<boolean> => {
    restartTimer = undefined;
    if (closing || !db.open) return Promise.resolve(false);
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { driver: createRequire(import.meta.url).resolve("better-sqlite3"), file: db.name, intervalMs },
        // Not the parent's --import hooks: the worker is plain CommonJS.
        execArgv: [],
      });
    } catch (error) {
      failOver(error, undefined);
      return Promise.resolve(false);
    }
    let readySince: number | undefined;
    const running: Running = { worker, ready: false, ended: false, exited: Promise.resolve() };
    const end = (error: unknown) => {
      if (running.ended) return;
      running.ended = true;
      failOver(error, readySince);
    };
    current = running;
    live.add(running);
    return new Promise<boolean>((resolve) => {
      running.exited = new Promise<void>((exited) =>
        worker.once("exit", (code) => {
          end(new Error(`the checkpoint worker exited with code ${code}`));
          live.delete(running);
          if (current === running) current = undefined;
          resolve(false);
          exited();
        }),
      );
      worker.on("error", end);
      worker.on("message", (message: "ready" | CheckpointProgress) => {
        if (message !== "ready") {
          latest = message;
          return;
        }
        // Ready, but already failed (its error came first): the restart is on its way.
        if (running.ended) return;
        running.ready = true;
        readySince = Date.now();
        if (!closing && db.open) {
          db.pragma(`wal_autocheckpoint = ${walPages}`);
          failuresInRow = 0;
          if (fallenBack) {
            fallenBack = false;
            logger.info({ file: db.name }, "background checkpoints resumed");
          }
        }
        resolve(true);
      });
    });
  };

  // Not for long: a first checkpoint of a large WAL (after a crash) or of a hung disk does not hold up the service's start.
  await Promise.race([start(), delay(options.startWaitMs ?? START_WAIT_MS, undefined, { ref: false })]);
  return {
    get latest() {
      return latest;
    },
    get failures() {
      return failures;
    },
    checkpointNow() {
      if (!closing && current?.ready && !current.ended) current.worker.postMessage("checkpoint");
    },
    async close() {
      if (!closing) {
        closing = true;
        clearTimeout(restartTimer);
        for (const running of live) if (!running.ended) running.worker.postMessage("stop");
      }
      // Every worker's end, a failed one still exiting too: the service closes the database after this, as its last connection.
      await Promise.all([...live].map((running) => running.exited));
      if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
    },
  };
}
