import { ErrorCode, NatsError, type JetStreamManager, type NatsConnection } from "nats";
import type { Logger } from "../logging/index.js";
import type { Db, TransactionTimer } from "../sqlite/index.js";
import { EventConsumer, hasRecordsOf, type EventHandler } from "./event-consumer.js";
import { wakeablePause } from "./wakeable-pause.js";
import { ConfigError, type NatsAuth } from "../config/index.js";
import { settlesWithin } from "../process/shutdown.js";
import { claimConsumers, type ClaimedConsumers, type ConsumerClaim } from "./consumer-claim.js";
import { connectNats, followConnection } from "./nats-connection.js";
import type { Outbox } from "./outbox.js";
import { OutboxRelay } from "./outbox-relay.js";
import { consumerInfo, defaultStreamSettings, ensureDurableConsumer, ensureStreams, renewIfUnreachable, STREAM_REMAKE_WAIT_MS } from "./stream-setup.js";
import type { StreamKey } from "./subjects.js";

/** One durable consumer a process runs. */
export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  handle: EventHandler;
  ignores?: ConstructorParameters<typeof EventConsumer>[0]["ignores"];
  onApplied?: ConstructorParameters<typeof EventConsumer>[0]["onApplied"];
  /**
   * What it applies comes from its stream alone (a read model): when, at
   * start, its database records nothing it took (hasRecordsOf) while
   * JetStream says it has delivered events (the database is new: deleted, or
   * replaced by an empty file), it is made again from its stream's first
   * message, so the read model is rebuilt rather than left missing all it
   * had. For consumers that ignore no event (one that only ignored would be
   * replayed at each start, harmlessly).
   */
  rebuildsFromStream?: boolean;
}

/** The event side of a process: where NATS is, what it publishes and what it consumes. */
export interface EventRuntimeOptions {
  servers: string;
  /** The NATS user to log in as, when the server requires one. */
  natsAuth?: NatsAuth;
  name: string;
  logger: Logger;
  db: Db;
  /** The outbox to relay (publishers only). */
  outbox?: Outbox;
  consumers?: readonly ConsumerSpec[];
  /**
   * The consumers are this process's alone (a read model's): before running them it claims their name
   * (claimConsumers), and asks again after each reconnect and every CLAIM_CHECK_MS while connected; `lost` is told
   * when another process holds them (before this one runs them, or the earlier of two found running them once NATS is
   * back, or the paused one awake): the process must end.
   */
  claim?: ConsumerClaim & { lost: (refusal: ConfigError) => void };
  /** The streams this process publishes to, which it keeps at its settings; any other it makes only when missing. */
  publishesTo?: readonly StreamKey[];
  /** Most events each stream holds (STREAM_MAX_EVENTS): a stream's at its making, raised at start on those it publishes to, never lowered. */
  streamMaxEvents?: number;
  /** Copies of each stream in a JetStream cluster (STREAM_REPLICAS): a stream's at its making, added at start to those it publishes to, never taken away. */
  streamReplicas?: number;
  maxDeliveries?: number;
  retryDelayMs?: number;
  /** How long JetStream waits for an ack before redelivering (ms); also how soon a crashed consumer's messages come back. */
  ackWaitMs?: number;
  /** Times and traces the consumers' transactions. */
  transactions?: TransactionTimer;
}

/** A process's running relay and consumers. */
export interface EventRuntime {
  /** Resolves once connected, with streams and consumers in place. */
  readonly ready: Promise<void>;
  /** The relay, once connected (undefined before, or for a process without an outbox). */
  relay(): OutboxRelay | undefined;
  consumers(): readonly EventConsumer[];
  /** Whether NATS is connected now. */
  isConnected(): boolean;
  /** Whether the streams and durable consumers were set up (once since the start): until then nothing is published or consumed. */
  isSetUp(): boolean;
  /** Stops consumers and the relay, then drains the connection. */
  close(): Promise<void>;
}

/** How often a process running claimed consumers asks again who else runs them, while connected (ms): a question and 300 ms of waiting for answers (ClaimOptions.checkEveryMs). */
const CLAIM_CHECK_MS = 2000;

/** How long a close waits for the NATS connection's drain (acks and unsubscribes flushed) before it closes the connection without. */
const NATS_DRAIN_MS = 2000;

/**
 * Runs `task` until it succeeds, backing off between attempts (`pause`); gives up once `isClosed` (before an attempt, or
 * after one failed).
 */
async function retrying<T>(what: string, logger: Logger, isClosed: () => boolean, pause: (ms: number) => Promise<void>, task: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    // A close during the back-off: no further attempt (a consumer waiting for this would hold up the close).
    if (attempt > 1 && isClosed()) throw new Error(`${what} given up: the event runtime is closing`);
    try {
      return await task();
    } catch (error) {
      if (isClosed()) throw error;
      if (attempt === 1 || attempt % 20 === 0) {
        // NATS refusing what was asked (a permission, a name) will not pass by itself: it is an error for an operator to fix.
        if (isNatsRefusal(error)) logger.error({ err: error, attempt }, `NATS refused the ${what} (see the NATS user's permissions and the consumer names); retrying`);
        else logger.warn({ err: error, attempt }, `${what} failed; retrying`);
      }
      await pause(Math.min(2000, 100 * attempt));
    }
  }
}

/** Whether NATS refused a request as not allowed or not valid (a permissions violation, a JetStream API error 400 or 403), rather than failed to answer it. */
function isNatsRefusal(error: unknown): boolean {
  if (!(error instanceof NatsError)) return false;
  return error.code === ErrorCode.PermissionsViolation || [400, 403].includes(error.api_error?.code ?? 0);
}

/**
 * Deletes a durable consumer that has been delivered events while its
 * database records nothing it took, so that it is made again from its
 * stream's first message. Safe whatever the cause: an event with an effect
 * is recorded in the same transaction as its effect, so a database without a
 * record holds no effect of this consumer, and a replay applies nothing
 * twice (events acked unrecorded had nothing to apply). Judged by how many
 * deliveries the durable made, not by the ack floor (a first event still
 * unacked, put back after a failure, keeps the floor at 0 however many
 * after it were applied and acked) nor by the delivered stream sequence (nats-server 2.9 puts a new durable on a
 * purged stream at the sequence before its first message, so every start
 * would replay an empty stream again).
 */
async function replayIfForgotten(manager: JetStreamManager, db: Db, c: ConsumerSpec, logger: Logger): Promise<void> {
  if (hasRecordsOf(db, c.durable)) return;
  const info = await consumerInfo(manager, c.stream, c.durable);
  if (info === undefined || info.delivered.consumer_seq === 0) return;
  logger.warn(
    { durable: c.durable, stream: c.stream, delivered: info.delivered.consumer_seq, deliveredUpTo: info.delivered.stream_seq, ackedUpTo: info.ack_floor.stream_seq },
    "the database has no record of events this consumer already took (a new database file): replaying its stream from the start to rebuild what it holds",
  );
  await manager.consumers.delete(c.stream, c.durable);
}

/**
 * Connects to NATS in the background — the process serves requests before
 * and while NATS is unreachable, and its outbox simply grows — then makes
 * sure the streams and durable consumers exist and starts the outbox relay
 * and the consumers.
 */
export function startEventRuntime(options: EventRuntimeOptions): EventRuntime {
  const { logger } = options;
  let nc: NatsConnection | undefined;
  let relay: OutboxRelay | undefined;
  let consumers: EventConsumer[] = [];
  let closed = false;
  const isClosed = () => closed;
  let following: { stop(): void } | undefined;
  /** Whether NATS is connected now: from the connection's first success, and its disconnects and reconnects since. */
  let connected = false;
  let claimed: ClaimedConsumers | undefined;
  let setUpOnce = false;
  /** The stream setup's back-off: a reconnect, or a close, cuts it short. */
  const backoff = wakeablePause();

  const ready = (async () => {
    nc = await connectNats(options.servers, options.name, logger, options.natsAuth);
    if (closed) {
      await nc.close();
      return;
    }
    const connection = nc;
    connected = true;
    // A reconnect cuts short a setup's back-off, at start too; once set up, it makes again what the server lost; and a
    // claim asks again (another copy may have claimed the consumers while this one was cut off: the later stops).
    let restore: ((after: string) => Promise<void>) | undefined;
    following = followConnection(connection, {
      down: () => {
        connected = false;
      },
      up: () => {
        connected = true;
        backoff.wake();
        void restore?.("a reconnect");
        claimed?.reconnected();
      },
    });
    const { claim } = options;
    claimed =
      claim &&
      (await claimConsumers(connection, claim, options.name, logger, { checkEveryMs: CLAIM_CHECK_MS, isConnected: () => connected }).catch((error: unknown) => {
        // A refusal (another process runs them) ends the process, but not one that is closing anyway.
        if (error instanceof ConfigError && !closed) claim.lost(error);
        throw error;
      }));
    if (closed) {
      claimed?.close();
      return;
    }
    /**
     * Makes sure the streams and durable consumers exist; resolves with those it had to create. At start
     * (before any consumer runs), a consumer that rebuilds from its stream and whose database has forgotten
     * it is deleted first, to be made again from the stream's start.
     */
    const setUp = (starting = false) =>
      retrying("stream setup", logger, isClosed, backoff.pause, async () => {
        const manager = await connection.jetstreamManager();
        const settings = {
          ...defaultStreamSettings,
          maxEvents: options.streamMaxEvents ?? defaultStreamSettings.maxEvents,
          replicas: options.streamReplicas ?? defaultStreamSettings.replicas,
        };
        // At start a stream missing is one never made (or a server's store lost); while running, one maybe still being deleted.
        const streams = await ensureStreams(manager, settings, starting ? 0 : STREAM_REMAKE_WAIT_MS, options.publishesTo ?? []);
        const durables = new Set<string>();
        for (const c of options.consumers ?? []) {
          if (starting && c.rebuildsFromStream) await replayIfForgotten(manager, options.db, c, logger);
          if (await ensureDurableConsumer(manager, c.stream, c.durable, c.filterSubject, options.ackWaitMs)) durables.add(c.durable);
        }
        return { streams, durables };
      });
    await setUp(true);
    if (closed) return;
    setUpOnce = true;
    /**
     * Makes again what JetStream lost since: a server back with an empty store (on every reconnect), or a
     * stream or durable consumer deleted under a running process (when a consumer is told it is gone, or the
     * relay's publishes fail). A consumer made again is subscribed to anew. One at a time.
     */
    let restoring: Promise<void> | undefined;
    restore = (after: string): Promise<void> =>
      // Nothing to make again once the runtime is closing (a relay's batch cut short by the close, say).
      closed ? Promise.resolve() : (restoring ??= setUp()
        .then(({ streams, durables }) => {
          if (streams.length > 0 || durables.size > 0) logger.warn({ streams, durables: [...durables], after }, "JetStream had lost these streams or durable consumers: made them again");
          for (const consumer of consumers) if (durables.has(consumer.durable)) consumer.resubscribe();
        })
        .catch((error: unknown) => {
          if (!closed) logger.error({ err: error, after }, "making the streams and durable consumers again failed");
        })
        .finally(() => (restoring = undefined)));
    const js = nc.jetstream();
    if (options.outbox) {
      relay = new OutboxRelay({ db: options.db, nc, logger, outbox: options.outbox, onPublishFailed: () => void restore("a failed publish") });
      relay.start();
    }
    consumers = (options.consumers ?? []).map((c) => {
      const consumer = new EventConsumer({
        js,
        db: options.db,
        logger,
        stream: c.stream,
        durable: c.durable,
        handle: c.handle,
        ignores: c.ignores,
        onApplied: c.onApplied,
        maxDeliveries: options.maxDeliveries,
        retryDelayMs: options.retryDelayMs,
        transactions: options.transactions,
        restore: () => restore(`${c.durable} was told it is gone`),
        renew: (probeMs) => renewIfUnreachable(connection, c.stream, c.durable, c.filterSubject, { ackWaitMs: options.ackWaitMs, probeMs }),
      });
      consumer.start();
      return consumer;
    });
    logger.info({ relay: relay !== undefined, consumers: consumers.length }, "event runtime started");
  })();
  ready.catch((error: unknown) => {
    // A refusal (the consumers claimed by another process) went to the claim's `lost`, which ends the process.
    if (!closed && !(error instanceof ConfigError)) logger.error({ err: error }, "event runtime failed to start");
  });

  return {
    ready,
    relay: () => relay,
    consumers: () => consumers,
    isConnected: () => connected && nc !== undefined && !nc.isClosed(),
    isSetUp: () => setUpOnce,
    async close() {
      closed = true;
      backoff.wake();
      following?.stop();
      claimed?.close();
      await Promise.all(consumers.map((c) => c.close()));
      await relay?.close();
      if (nc && !nc.isClosed()) {
        // A hung nats-server (stopped, or stuck on a full disk) keeps the connection up and answers nothing: nats.js's drain
        // then waits until its pings find the server gone (20-30 s), past the shutdown's grace. It gets a bound of its own.
        const connection = nc;
        if (!(await settlesWithin(connection.drain().catch(() => connection.close()), NATS_DRAIN_MS))) {
          logger.warn({ waitedMs: NATS_DRAIN_MS }, "NATS did not answer the drain of the connection: closing it without");
          await settlesWithin(connection.close(), NATS_DRAIN_MS);
        }
      }
    },
  };
}
