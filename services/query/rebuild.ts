// Rebuilds every read model from the event streams: replays ORDERS and
// INVENTORY from their first message into a new database file, through the
// same Projector the live query service uses.
//
//   npm run rebuild                   builds query.rebuilt.db beside the read model (query.db) and compares the two
//   npm run rebuild -- --out FILE     builds FILE instead (empty, missing or a read model: never another database)
//   npm run rebuild -- --replace      then replaces query.db with it (refused while the query service has it open, and
//                                     when the live read models hold what the rebuilt ones lack: --allow-loss replaces anyway)
import Database from "better-sqlite3";
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { AckPolicy, DeliverPolicy, nanos, type JsMsg } from "nats";
import type { NatsAuth } from "../../shared/config/index.js";
import { DeferredEvents, connectNats, consumerNames, decodeEvent, isOfUnknownType, streams, type StreamKey } from "../../shared/events/index.js";
import { createLogger } from "../../shared/logging/index.js";
import { natsPasswordFile } from "../../shared/security/index.js";
import { claimSoleWriter, holdExclusively, inUse, openDatabase, type Db } from "../../shared/sqlite/index.js";
import { queryConfig, type QueryConfig } from "./config.js";
import { Projector } from "./projector.js";
import { dumpReadModels } from "./read-store.js";
import { queryMigrations } from "./schema.js";

/**
 * Replays every stream from its start up to its last message now into `db`;
 * returns events applied per stream. An event of a payload type this code
 * does not know is kept in deferred_events, as the live consumer keeps it,
 * for an upgraded query service to apply. Fails at once, saying what to do, when
 * NATS does not answer or refuses the login (a tool run by hand must not
 * wait silently for a server that is not there).
 */
export async function replayStreams(servers: string, db: Db, consumerName: string, natsAuth?: NatsAuth): Promise<Record<string, number>> {
  const logger = createLogger("rebuild", "warn");
  const nc = await connectNats(servers, "rebuild", logger, natsAuth, { waitForServer: false }).catch((error: unknown) => {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(
      `cannot connect to NATS at ${servers} as ${natsAuth ? `user ${natsAuth.user}` : "an anonymous client"} (${why}): ` +
        "start Orderly first (npm start), or set NATS_URL, and NATS_USER with NATS_PASSWORD or NATS_PASSWORD_FILE",
    );
  });
  try {
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    const projector = new Projector(db, logger);
    const record = db.prepare<[string, string, number]>("INSERT OR IGNORE INTO processed_events (consumer, event_id, applied_time) VALUES (?, ?, ?)");
    const counts: Record<string, number> = {};
    for (const [key, stream] of Object.entries(streams) as [StreamKey, (typeof streams)[StreamKey]][]) {
      const { last_seq: last, messages: held } = (await jsm.streams.info(stream.name)).state;
      counts[stream.name] = 0;
      // A purged stream keeps its last sequence, with no message at it (nor at a last one deleted by hand).
      if (held === 0) continue;
      const durable = consumerNames.projection(consumerName, key);
      // A consumer of the rebuild's own name (a NATS user may be allowed only consumers it names), from the first message,
      // without acks; made afresh, deleted at the end, and forgotten by the server a minute after a rebuild that died.
      const name = consumerNames.rebuild(consumerName, key);
      await jsm.consumers.delete(stream.name, name).catch(() => undefined);
      await jsm.consumers.add(stream.name, { name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, inactive_threshold: nanos(60_000) });
      const consumer = await js.consumers.get(stream.name, name);
      const messages = await consumer.consume({ max_messages: 512 });
      const deferred = new DeferredEvents(db, durable);
      let kept = 0;
      /** Applies a message, or keeps it as of an unknown type (as the live consumer does); whether it was applied, or kept. */
      const apply = db.transaction((msg: JsMsg, now: number): "applied" | "kept" | "kept already" => {
        const event = decodeEvent(msg.data);
        if (isOfUnknownType(event)) return deferred.keep(msg, event.eventId, now) ? "kept" : "kept already";
        projector.handle(event, msg.subject);
        record.run(durable, event.eventId, now);
        return "applied";
      });
      for await (const msg of messages) {
        try {
          const done = apply(msg, Date.now());
          if (done === "applied") counts[stream.name]!++;
          else if (done === "kept") kept++;
        } catch (error) {
          logger.warn({ seq: msg.info.streamSequence, err: error }, "skipped an event the projector cannot apply (the live consumer dead-letters it)");
        }
        // Up to the last message now, or the last there is: `pending` counts those after this one.
        if (msg.info.streamSequence >= last || msg.info.pending === 0) break;
      }
      messages.stop();
      if (kept > 0) logger.warn({ stream: stream.name, kept }, "kept events of a payload type this code does not know (a newer version's) for an upgraded query service to apply");
      await jsm.consumers.delete(stream.name, name).catch(() => undefined);
    }
    return counts;
  } finally {
    await nc.close();
  }
}

/**
 * Who the rebuild logs in to NATS as: NATS_USER when set; else, when the
 * data directory holds the query service's dev password (`npm start` wrote
 * it, and its nats-server refuses anonymous clients), the query service's
 * user, whose permissions cover reading the streams.
 */
function rebuildAuth(config: QueryConfig): NatsAuth | undefined {
  if (config.natsAuth !== undefined) return config.natsAuth;
  const file = natsPasswordFile(config.dataDir, "query");
  return existsSync(file) ? { user: "query", pass: readFileSync(file, "utf8").trim() } : undefined;
}

/** How the live read models compare with rebuilt ones: in words, and how many orders and stock levels only the live ones hold. */
export interface Comparison {
  says: string;
  /** Orders and stock levels the live read models hold and the rebuilt ones lack, or hold at an older version: what a replace loses. */
  onlyLive: { orders: number; stockLevels: number };
}

/**
 * Whether the read models in `file` (the live ones) equal `rebuilt`. The
 * file is only read: a live read model of another schema version is not
 * compared (migrating it here would change a file a running service, or an
 * older version kept for going back, has at its own version).
 */
export function compareWithLive(file: string, rebuilt: ReturnType<typeof dumpReadModels>): Comparison {
  const live = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const version = live.pragma("user_version", { simple: true }) as number;
    // At this code's schema version the live tables are read whole, once; at another, only what the count needs: orders and
    // stock levels have had an id and a version since the first schema.
    const dump = version === queryMigrations.length ? dumpReadModels(live) : undefined;
    const rows = (table: string, key: string) => dump?.[table] ?? live.prepare(`SELECT ${key}, version FROM ${table}`).safeIntegers(true).all();
    const onlyLive = {
      orders: newerOnlyIn(rows("order_views", "id"), rebuilt.order_views, "id"),
      stockLevels: newerOnlyIn(rows("stock_levels", "sku"), rebuilt.stock_levels, "sku"),
    };
    if (dump === undefined) {
      return { says: `the live read models (${file}) are at schema version ${version} and this code's at ${queryMigrations.length}: not compared`, onlyLive };
    }
    if (isDeepStrictEqual(dump, rebuilt)) return { says: "the rebuilt read models equal the live ones", onlyLive };
    if (onlyLive.orders + onlyLive.stockLevels === 0) return { says: "the rebuilt read models differ from the live ones (the live side may still be catching up)", onlyLive };
    return {
      says:
        `the rebuilt read models lack ${onlyLive.orders} order(s) and ${onlyLive.stockLevels} stock level(s) the live ones hold (or hold them at an older version): ` +
        "either the live side applied events published after the rebuild read the streams, or the streams no longer hold events it applied " +
        "(a stream purged or deleted, or NATS's store restored from a copy older than the read models)",
      onlyLive,
    };
  } finally {
    live.close();
  }
}

/** How many rows of `live` (by `key`) `rebuilt` lacks or holds at a lower version. */
function newerOnlyIn(live: unknown[] | undefined, rebuilt: unknown[] | undefined, key: string): number {
  type Row = Record<string, unknown> & { version: bigint };
  const versions = new Map((rebuilt as Row[] | undefined)?.map((row) => [row[key], row.version]));
  return ((live ?? []) as Row[]).filter((row) => (versions.get(row[key]) ?? -1n) < row.version).length;
}

/**
 * Why a rebuild may not write its output to `path`, replacing what is there; undefined when it may: nothing there (no
 * file, or an empty one) or a read model (a database with the query service's tables, an earlier rebuild's say). Not
 * a folder, nor a path whose folder does not exist, nor a file that is not a SQLite database, nor a database of
 * something else (the order or inventory service's own, or a copy of one: a rebuild would wipe it).
 */
function refusalToReplace(path: string): string | undefined {
  if (!existsSync(dirname(path))) return `the folder of --out ${path} does not exist: create it, or give another path`;
  if (!existsSync(path)) return undefined;
  const stat = statSync(path);
  if (stat.isDirectory()) return `--out ${path} is a folder: give the path of a file`;
  if (stat.size === 0) return undefined;
  const header = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!header.equals(SQLITE_HEADER)) return `--out ${path} is a file that is not a SQLite database, which the rebuild would replace: give another path`;
  if (inUse(path)) return openElsewhere(path);
  // Nothing else has it open: the -wal and -shm files a read-only look at a WAL database makes are this look's, and go with it.
  const companions = ["-wal", "-shm"].map((suffix) => path + suffix).filter((file) => !existsSync(file));
  let tables: string[];
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 0 });
    try {
      tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
    } finally {
      db.close();
      for (const file of companions) rmSync(file, { force: true });
    }
  } catch (error) {
    return `--out ${path} is a SQLite database that cannot be read (${(error as Error).message}), which the rebuild would replace: give another path`;
  }
  if (tables.length === 0 || tables.includes(READ_MODEL_TABLE)) return undefined;
  return `--out ${path} is a database that is not a read model (its tables: ${tables.slice(0, 4).join(", ")}${tables.length > 4 ? ", …" : ""}), which the rebuild would replace: give another path`;
}

/** The refusal of an output another process has open (a sqlite3 shell, a query service on it): replaced, it would go on using the old file. */
function openElsewhere(path: string): string {
  return `${path} is open in another process: give another file with --out`;
}

/** A table every read model has had since the first schema: what marks a database as one. */
const READ_MODEL_TABLE = "order_views";

/** The first 16 bytes of every SQLite database file. */
const SQLITE_HEADER = Buffer.from("SQLite format 3\0", "latin1");

/** Whether two paths name one file (also through a link), whether or not it exists yet. */
function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * Refuses to replace a read model a connection has open (the query service
 * holds it as its writer too, see claimSoleWriter): it would go on writing
 * into the deleted files and ack the events it applied there, so they would
 * be lost from the new file for good.
 */
function assertNotInUse(file: string): void {
  if (inUse(file)) throw new Error(`${file} is in use (the query service is running): stop it first, then run npm run rebuild -- --replace`);
}

async function main(): Promise<void> {
  const config = queryConfig(process.env);
  let args: { replace?: boolean; out?: string; "allow-loss"?: boolean };
  const usage = "usage: npm run rebuild -- [--out <file>] [--replace [--allow-loss]]";
  try {
    ({ values: args } = parseArgs({ options: { replace: { type: "boolean" }, out: { type: "string" }, "allow-loss": { type: "boolean" } }, strict: true }));
  } catch (error) {
    // An unknown option (a mistyped --replace, say) or --out without a path: nothing is done.
    throw new Error(`${(error as Error).message}\n${usage}`);
  }
  const replace = args.replace === true;
  if (args["allow-loss"] === true && !replace) throw new Error(`--allow-loss goes with --replace\n${usage}`);
  // Held from before the replay (so the run is not wasted) until the process ends: a query service cannot start on the
  // database meanwhile. Just before the files change, no other connection (a sqlite3 shell, say) may have it open either.
  if (replace) claimSoleWriter(config.dbFile, "query");
  const out = resolve(args.out ?? join(dirname(config.dbFile), "query.rebuilt.db"));
  // The output replaces what is there: never the read model itself (a running service would go on applying, and acking,
  // events into the file replaced under it, lost to the next start), nor a file another process has open (refusalToReplace).
  if (sameFile(out, config.dbFile)) throw new Error(`--out ${out} is the read model itself: give another file, or use --replace to swap the rebuilt one in`);
  const refusal = refusalToReplace(out);
  if (refusal !== undefined) throw new Error(refusal);
  // Built beside it and moved in place once whole: a rebuild that fails (NATS down, say) leaves the file as it was. One
  // rebuild at a time writes an output (held while it builds, or until this process ends): another would delete the file
  // this one builds.
  const building = `${out}.building`;
  const writing = holdExclusively(`${building}.lock`);
  if (writing === undefined) throw new Error(`another rebuild is writing ${out}: wait for it to end, or give another file with --out`);
  const removeBuilding = () => {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(building + suffix, { force: true });
  };
  removeBuilding();
  const started = performance.now();
  let counts: Record<string, number>;
  let rebuilt: ReturnType<typeof dumpReadModels>;
  try {
    const db = openDatabase({ file: building, migrations: queryMigrations, synchronous: "NORMAL" });
    try {
      counts = await replayStreams(config.natsUrl, db, config.consumerName, rebuildAuth(config));
      rebuilt = dumpReadModels(db);
    } finally {
      db.close();
    }
    // Opened meanwhile (the replay can take minutes), the output is not replaced under its reader.
    if (inUse(out)) throw new Error(openElsewhere(out));
    for (const suffix of ["-wal", "-shm"]) rmSync(out + suffix, { force: true });
    renameSync(building, out);
  } catch (error) {
    removeBuilding();
    throw error;
  } finally {
    writing.close();
    rmSync(`${building}.lock`, { force: true });
  }
  const summary = Object.fromEntries(Object.entries(rebuilt).map(([table, rows]) => [table, rows.length]));
  console.log(JSON.stringify({ out, events: counts, rows: summary, ms: Math.round(performance.now() - started) }));
  const comparison = existsSync(config.dbFile) ? compareWithLive(config.dbFile, rebuilt) : undefined;
  if (comparison !== undefined) console.log(comparison.says);
  if (replace) {
    // With the query service stopped (--replace holds the read model's writer lock), the live read models applied nothing the
    // streams did not hold when the rebuild read them: what only they hold is gone from the streams, and a replace loses it.
    const { orders, stockLevels } = comparison?.onlyLive ?? { orders: 0, stockLevels: 0 };
    if (orders + stockLevels > 0 && args["allow-loss"] !== true) {
      throw new Error(
        `not replaced: ${config.dbFile} holds ${orders} order(s) and ${stockLevels} stock level(s) that the rebuilt read models (${out}) lack or hold ` +
          "at an older version, as the streams no longer hold their events; replacing would lose them. To replace anyway: npm run rebuild -- --replace --allow-loss",
      );
    }
    assertNotInUse(config.dbFile);
    for (const suffix of ["-wal", "-shm"]) rmSync(config.dbFile + suffix, { force: true });
    renameSync(out, config.dbFile);
    console.log(`replaced ${config.dbFile}`);
  }
}

if (process.argv[1]?.endsWith("rebuild.ts")) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
