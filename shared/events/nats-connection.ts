import { setTimeout as delay } from "node:timers/promises";
import { ErrorCode, Events, createInbox, type NatsConnection, type Status } from "nats";
import type { NatsAuth } from "../config/service-config.js";
import type { Logger } from "../logging/index.js";
import { connectBounded } from "./handshake-bound-transport.js";

/**
 * The inbox prefix of a NATS user's connections (`_INBOX_<user>`): where the
 * answers to its requests and its consumers' messages arrive, so that a
 * server can let each user subscribe to its own inbox only.
 */
export function natsInboxPrefix(user: string): string {
  return `_INBOX_${user}`;
}

/** How often a connection pings its server (ms): two unanswered pings mark it stale, and it reconnects elsewhere. */
const NATS_PING_INTERVAL_MS = 2000;

/** How long a connection attempt waits for a server's handshake (ms) before trying the next server. */
const NATS_HANDSHAKE_TIMEOUT_MS = 3000;

/** How many kinds of error a connection says, until it reconnects (a permission refused for each of many subjects, say). */
const MAX_TOLD_ERRORS = 100;

/** How long a process whose first login NATS refused waits before it tries again (ms). */
const NATS_LOGIN_RETRY_MS = 1000;

/** How often a process waiting for its first NATS connection says so (ms). */
const NATS_WAIT_LOG_MS = 3000;

/** The inbox prefix each connection connectNats made was given (nats.js does not expose its options). */
const inboxPrefixes = new WeakMap<NatsConnection, string>();

/** A new inbox subject on a connection, under its inbox prefix (for a subscription of one's own, as nats.js makes its own). */
export function newInbox(nc: NatsConnection): string {
  return createInbox(inboxPrefixes.get(nc));
}

/**
 * Connects to NATS and keeps reconnecting for ever, logging each change of
 * connection state; the first connection is awaited (retried until it
 * works, with a warning every few seconds while no server answers), so a
 * service can start before its NATS server does. A one-off
 * tool passes `waitForServer: false` to fail at once when no server answers.
 * With `auth`, it logs in as that NATS user (whose permissions the server
 * config limits to the process's own subjects), with its own inbox prefix.
 */
export async function connectNats(servers: string, name: string, logger: Logger, auth?: NatsAuth, { waitForServer = true } = {}): Promise<NatsConnection> {
  const options = {
    servers: servers.split(","),
    ...(auth ? { user: auth.user, pass: auth.pass, inboxPrefix: natsInboxPrefix(auth.user) } : {}),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: waitForServer,
    // A server that hangs (stopped, not dead: its sockets stay open) is found by pings: with nats.js's two outstanding,
    // within 4-6 s (at 10 s, 20-30 s), and a reconnect that lands on it gives up after `timeout` (nats.js's 20 s default
    // had a hung cluster member hold up the events ~50 s while two live servers kept quorum).
    pingInterval: NATS_PING_INTERVAL_MS,
    maxPingOut: 2,
    timeout: NATS_HANDSHAKE_TIMEOUT_MS,
    // No stack captured per request (every JetStream publish and pull is one): the relay drained
    // 11.8k events/s with it against 7.1k without, in the bench; errors still say what failed.
    noAsyncTraces: true,
  };
  // While no server answers the first connection, nats.js retries without a word: said every few seconds.
  let refusedAt = Number.NEGATIVE_INFINITY;
  const waiting = waitForServer
    ? setInterval(() => {
        // Not while it is a refused login that keeps it out (said on its own).
        if (Date.now() - refusedAt > NATS_WAIT_LOG_MS) logger.warn({ servers }, "waiting for NATS: no server answers yet");
      }, NATS_WAIT_LOG_MS).unref()
    : undefined;
  let nc: NatsConnection;
  try {
    for (let refusals = 1; ; refusals++) {
      try {
        // A reconnect attempt given up on a hung server is ended, not left to complete and drop the live connection later.
        nc = await connectBounded(options);
        break;
      } catch (error) {
        // A login refused ends the first connection (nats.js gives up on the same error twice in a row): said, and tried again.
        if (!waitForServer || (error as { code?: unknown }).code !== ErrorCode.AuthorizationViolation) throw error;
        refusedAt = Date.now();
        if (refusals === 1 || refusals % 20 === 0) {
          logger.error({ err: error, servers, user: auth?.user, refusals }, "NATS refused this process's login (see its NATS user and password); trying again");
        }
        await delay(NATS_LOGIN_RETRY_MS);
      }
    }
  } finally {
    clearInterval(waiting);
  }
  // Once connected, a refused login while reconnecting is tried again too: otherwise nats.js would give up for good, and
  // a server restarted for a moment with a configuration that refuses the user (0.5 s at this pace) would leave the
  // process cut off until restarted. (nats.js reads its options on each error; they are its connection's own copy.)
  (nc as unknown as { options: { ignoreAuthErrorAbort: boolean } }).options.ignoreAuthErrorAbort = true;
  if (auth) inboxPrefixes.set(nc, natsInboxPrefix(auth.user));
  logger.info({ server: nc.getServer() }, "nats connected");
  void logStates(nc, logger);
  return nc;
}

/**
 * Logs a connection's changes of state. While it is down, nats.js tries again every 250 ms, each attempt a reconnecting
 * (and, refused, a disconnect): the outage is said as it begins and ends, the attempts counted for the line that ends
 * it. An error is said once per connection for each kind and subject's first two tokens (a login refused at each
 * attempt, a permission refused again: `$JS.ACK` for every ack refused), for at most MAX_TOLD_ERRORS of them, and a
 * change of the cluster's servers at debug.
 */
async function logStates(nc: NatsConnection, logger: Logger): Promise<void> {
  let attempts = 0;
  let down = false;
  const told = new Set<string>();
  for await (const status of nc.status()) {
    if (status.type === "pingTimer") continue;
    if (status.type === "reconnecting" && ++attempts > 1) continue;
    if (status.type === "disconnect" && down) continue;
    const permission = status.permissionContext;
    if (status.type === "error") {
      const key = `${String(status.data)} ${permission?.operation ?? ""} ${permission?.subject.split(".", 2).join(".") ?? ""}`;
      if (told.has(key) || told.size >= MAX_TOLD_ERRORS) continue;
      told.add(key);
    }
    const level = status.type === "disconnect" || status.type === "error" ? "warn" : status.type === "update" ? "debug" : "info";
    const fields = { nats: status.type, data: typeof status.data === "string" ? status.data : undefined, ...(permission ? { permission } : {}) };
    logger[level](status.type === "reconnect" ? { ...fields, attempts } : fields, "nats connection state");
    if (status.type === "disconnect") down = true;
    if (status.type === "reconnect") {
      attempts = 0;
      down = false;
      told.clear();
    }
  }
}

/** What `followConnection` calls as the connection's state changes. */
export interface ConnectionWatcher {
  /** The connection dropped (nats.js keeps reconnecting). */
  down(): void;
  /** It is back (nats.js has sent the subscriptions again). */
  up(): void;
}

/**
 * Calls `watcher` on each drop and return of a connection, as nats.js
 * reports them, until `stop` (or the connection closes). `done` settles when
 * it stops following: rejected if nats.js's status iterator failed, or a
 * callback threw, after which nothing more is reported.
 */
export function followConnection(nc: NatsConnection, watcher: ConnectionWatcher): { stop(): void; done: Promise<void> } {
  // nats.js's status() is an iterator it ends with stop() (typed only as AsyncIterable).
  const statuses = nc.status() as AsyncIterable<Status> & { stop(): void };
  const done = (async () => {
    for await (const status of statuses) {
      if (status.type === Events.Disconnect) watcher.down();
      else if (status.type === Events.Reconnect) watcher.up();
    }
  })();
  return { stop: () => statuses.stop(), done };
}
