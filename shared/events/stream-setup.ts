import { AckPolicy, DeliverPolicy, DiscardPolicy, ErrorCode, RetentionPolicy, StorageType, type ConsumerInfo, type JetStreamManager, type NatsConnection, type NatsError, type StreamConfig } from "nats";
import { streams, type StreamKey } from "./subjects.js";

/** How the event streams are kept: their limits, and their copies. Rebuilding read models replays what the streams still hold. */
export interface StreamSettings {
  /** How long JetStream drops a re-published event id (ns are derived). */
  duplicateWindowMs: number;
  /** Oldest event kept (0: no age limit). */
  maxAgeMs: number;
  /** Most events a stream holds: a full stream refuses new events, which wait in the outboxes. */
  maxEvents: number;
  /** Copies of each stream a JetStream cluster keeps, on as many servers (1 on a single server; 3 rides out the loss of one of them). */
  replicas: number;
}

/** Defaults: a 10-minute duplicate window, no age limit, 2 million events per stream (~1 GB at the ~450 bytes an event takes in the store), one copy. */
export const defaultStreamSettings: StreamSettings = {
  duplicateWindowMs: 10 * 60 * 1000,
  maxAgeMs: 0,
  maxEvents: 2_000_000,
  replicas: 1,
};

const MS = 1_000_000;

/**
 * How long a running process waits before it makes again a stream it found missing (ms): the server may
 * still be deleting it, and removes its files under one made again meanwhile (see ensureStreams). Fifty
 * times the moment that took here, for a loaded server.
 */
export const STREAM_REMAKE_WAIT_MS = 1000;

/** Every stream of Orderly's, by its key. */
const ALL_STREAMS = Object.keys(streams) as StreamKey[];

type WantedStream = Partial<StreamConfig> & { name: string; max_msgs: number; num_replicas: number };

function config(stream: { name: string; subjects: readonly string[] }, settings: StreamSettings): WantedStream {
  return {
    name: stream.name,
    subjects: [...stream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // A full stream refuses what comes next (the relay keeps it in the outbox and retries) instead of
    // dropping its oldest events, which a consumer far behind may not have applied yet, and which a
    // rebuild replays: nothing is lost without a word, and raising STREAM_MAX_EVENTS lets the events on.
    discard: DiscardPolicy.New,
    duplicate_window: settings.duplicateWindowMs * MS,
    max_age: settings.maxAgeMs * MS,
    // The limit is a count, and there is no size limit: nats-server 2.9 (and 2.10 until the fix of
    // nats-io/nats-server#4772) checks a new message against max_bytes without its subject and the
    // record's overhead, stores it, then finds the stream over its size and deletes the oldest
    // messages even under DiscardNew (#4771); its count check is exact.
    max_msgs: settings.maxEvents,
    max_bytes: -1,
    num_replicas: settings.replicas,
  };
}

/**
 * Creates Orderly's streams when missing, and updates those `updates` names (by default all) to this configuration;
 * every process runs it at start, updating only the stream it publishes to, so that no process's NATS user need be
 * allowed to change another's stream (an update that lowers a stream's limit deletes its events: a purge). Any process
 * makes a missing stream, so a reader restores one deleted under it (at its own settings, until the producer's next setup
 * raises them). Resolves with the names of the streams it had to create.
 * A stream's event limit is only ever raised: JetStream meets a lower one by deleting the oldest
 * events at once, which a consumer far behind may not have applied, so one process started with a
 * smaller STREAM_MAX_EVENTS than the rest must not shrink the streams (lowering it on purpose is done
 * with the nats CLI). A process writes a stream's configuration only when it changes something, so
 * one that read a limit another process has since raised leaves the raised one alone; two processes
 * changing a stream at the same instant can still race (JetStream has no compare-and-set for it).
 * Its copies are only ever added to, as well: one process started without STREAM_REPLICAS must not
 * take a cluster's streams down to one copy.
 *
 * A stream found missing is made after `remakeAfterMs`: a running process finds a stream gone while
 * nats-server (2.9.10) may still be deleting it. The server stops answering for the stream, and tells
 * its consumers they are deleted, before it removes the stream's files; a stream made again in that
 * moment (a few ms here) has its files removed under it: it takes events, acks them, and delivers
 * none, nor answers a read of them, for good. Made again at once, 96 of 100 were lost that way (or
 * refused: "error creating store for stream"); 20 ms later, none of 100.
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  settings: StreamSettings = defaultStreamSettings,
  remakeAfterMs = 0,
  updates: readonly StreamKey[] = ALL_STREAMS,
): Promise<string[]> {
  const created: string[] = [];
  for (const key of ALL_STREAMS) {
    const wanted = config(streams[key], settings);
    // Another process's stream is only looked for: its NATS user may not change it.
    const keep = updates.includes(key) ? () => updateStream(jsm, wanted) : async () => void (await jsm.streams.info(wanted.name));
    try {
      await keep();
    } catch (error) {
      if (!/stream not found/i.test(String(error))) throw error;
      if (remakeAfterMs > 0) await new Promise((resolve) => setTimeout(resolve, remakeAfterMs));
      try {
        await jsm.streams.add(wanted);
        created.push(wanted.name);
      } catch (addError) {
        // Another process created it in between: bring it to this configuration (if it is this one's to keep).
        if (!/already in use/i.test(String(addError))) throw addError;
        await keep();
      }
    }
  }
  return created;
}

/**
 * The event limit a stream gets: the larger of its own and the one wanted. A stream with no limit at
 * all (set so by hand) keeps none; one with a size limit and no count (as Orderly made them before)
 * gets room for as many events as wanted beyond those it holds, so it is neither full at once nor
 * lowered below the events published while this runs.
 */
function eventLimit(current: StreamConfig, held: number, wanted: number): number {
  if (current.max_msgs < 0) return current.max_bytes < 0 ? -1 : held + wanted;
  return Math.max(current.max_msgs, wanted);
}

/** Brings a stream to `wanted` with its event limit (see eventLimit) and no fewer copies than it has, when that changes anything. */
async function updateStream(jsm: JetStreamManager, wanted: WantedStream): Promise<void> {
  const { config: current, state } = await jsm.streams.info(wanted.name);
  const next = { ...wanted, max_msgs: eventLimit(current, state.messages, wanted.max_msgs), num_replicas: Math.max(current.num_replicas, wanted.num_replicas) };
  const unchanged = Object.entries(next).every(([key, value]) => JSON.stringify(current[key as keyof StreamConfig]) === JSON.stringify(value));
  if (!unchanged) await jsm.streams.update(wanted.name, next);
}

/** A durable pull consumer's configuration: explicit ack, unlimited deliveries (the consumer dead-letters itself). */
function durableConfig(durable: string, filterSubject: string, ackWaitMs: number) {
  return {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filterSubject,
    ack_wait: ackWaitMs * MS,
    max_ack_pending: 1000,
    max_deliver: -1,
  };
}

/**
 * Creates a durable pull consumer with explicit ack (or updates it); true when it had to be created.
 * Deliveries are unlimited; the consumer dead-letters itself.
 */
export async function ensureDurableConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filterSubject: string,
  ackWaitMs = 5000,
): Promise<boolean> {
  const wanted = durableConfig(durable, filterSubject, ackWaitMs);
  const info = await consumerInfo(jsm, stream, durable);
  if (info === undefined) {
    await jsm.consumers.add(stream, wanted);
    return true;
  }
  // Written only when it changes something: this runs again whenever events stop flowing (see the event runtime).
  const { ack_wait, max_ack_pending, max_deliver } = info.config;
  if (ack_wait !== wanted.ack_wait || max_ack_pending !== wanted.max_ack_pending || max_deliver !== wanted.max_deliver) {
    await jsm.consumers.update(stream, durable, { ack_wait: wanted.ack_wait, max_ack_pending: wanted.max_ack_pending, max_deliver: -1 });
  }
  return false;
}

/**
 * Makes a durable consumer again where it stood when a pull reaches nothing, and says whether it did. For one
 * that JetStream says exists but whose pulls go unanswered (see EventConsumer): nats-server 2.9.10 leaves a
 * durable that way now and then when several processes make its stream again at once (a probe with two
 * connections each making the stream and a durable, ~13,000 tries: about one in 1,000, and none in 4,000 with
 * one of them making the stream; its deliveries and redeliveries never reached a pull, and one made again like
 * this delivered at once).
 *
 * The pull is a no_wait one, which a consumer that works answers at once: with "no messages", or with an
 * event, put back at once (one delivery more on its count). One that does not answer within `probeMs` is
 * deleted and made again from the first event it has not acked, so nothing is skipped: what it delivered and
 * was not acked comes again, and the inbox skips what was applied. A floor past the stream's last event (left
 * from a stream since made again) starts it from the stream's first. Should the add fail after the delete, the
 * consumer finds its durable gone and the event runtime makes it again from the stream's first event.
 */
export async function renewIfUnreachable(
  nc: NatsConnection,
  stream: string,
  durable: string,
  filterSubject: string,
  options: { ackWaitMs?: number; probeMs: number },
): Promise<boolean> {
  if (await pullIsAnswered(nc, stream, durable, options.probeMs)) return false;
  const jsm = await nc.jetstreamManager();
  const [{ ack_floor: ackFloor }, { state }] = await Promise.all([jsm.consumers.info(stream, durable), jsm.streams.info(stream)]);
  const start = ackFloor.stream_seq <= state.last_seq ? ackFloor.stream_seq + 1 : 1;
  await jsm.consumers.delete(stream, durable);
  await jsm.consumers.add(stream, { ...durableConfig(durable, filterSubject, options.ackWaitMs ?? 5000), deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start });
  return true;
}

/** Whether a no_wait pull gets an answer within `timeoutMs` (nobody there at all, "no responders", counts as one: a consumer missing is told so). */
async function pullIsAnswered(nc: NatsConnection, stream: string, durable: string, timeoutMs: number): Promise<boolean> {
  try {
    // Its own subscription: an event comes under its stream's subject, which nats.js's shared request inbox would not match to the request.
    const reply = await nc.request(`$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`, JSON.stringify({ batch: 1, no_wait: true }), { timeout: timeoutMs, noMux: true });
    // An event (its reply subject is its ack's): put back for the consumer's own pulls.
    if (reply.reply) reply.respond("-NAK");
    return true;
  } catch (error) {
    return (error as NatsError).code !== ErrorCode.Timeout;
  }
}

/** A durable consumer as JetStream describes it, or undefined when it does not exist. */
export async function consumerInfo(jsm: JetStreamManager, stream: string, durable: string): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(stream, durable);
  } catch (error) {
    if (/consumer not found/i.test(String(error))) return undefined;
    throw error;
  }
}
