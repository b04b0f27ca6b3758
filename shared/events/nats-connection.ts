import { Events, createInbox, type NatsConnection, type Status } from "nats";
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
  // While no server answers the first connection, nats.js retries without a word: said every few seconds.
  const waiting = waitForServer ? setInterval(() => logger.warn({ servers }, "waiting for NATS: no server answers yet"), NATS_WAIT_LOG_MS).unref() : undefined;
  // A reconnect attempt given up on a hung server is ended, not left to complete and drop the live connection later.
  const nc = await connectBounded({
    servers: servers.split(","),
    ...(auth ? { user: auth.user, pass: auth.pass, inboxPrefix: natsInboxPrefix(auth.user) } : {}),
    name,
    maxReconnectAttempts: -1,
    // nats.js otherwise gives up for good on the same login error twice in a row: a server restarted for a moment with a
    // configuration that refuses the user (0.5 s at this pace) would leave the process cut off until it is restarted.
    ignoreAuthErrorAbort: true,
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
  }).finally(() => clearInterval(waiting));
  if (auth) inboxPrefixes.set(nc, natsInboxPrefix(auth.user));
  logger.info({ server: nc.getServer() }, "nats connected");
  void (async () => {
    // nats.js tries again every 250 ms while the server is away: the first attempt is logged, the rest are counted for
    // the line that ends the outage; so is an error each attempt meets (a login refused), said once until then.
    let attempts = 0;
    let lastError: unknown;
    for await (const status of nc.status()) {
      if (status.type === "pingTimer") continue;
      if (status.type === "reconnecting" && ++attempts > 1) continue;
      if (status.type === "error") {
        if (status.data === lastError) continue;
        lastError = status.data;
      }
      const level = status.type === "disconnect" || status.type === "error" ? "warn" : "info";
      const fields = { nats: status.type, data: typeof status.data === "string" ? status.data : undefined };
      logger[level](status.type === "reconnect" ? { ...fields, attempts } : fields, "nats connection state");
      if (status.type === "reconnect") {
        attempts = 0;
        lastError = undefined;
      }
    }
  })();
  return nc;
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
