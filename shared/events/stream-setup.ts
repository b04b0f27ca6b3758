import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "nats";
import { streams } from "./subjects.js";

/** Limits of the event streams. Rebuilding read models replays what the streams still hold. */
export interface StreamLimits {
  /** How long JetStream drops a re-published event id (ns are derived). */
  duplicateWindowMs: number;
  /** Oldest event kept (0: no age limit). */
  maxAgeMs: number;
  /** Most events a stream holds: a full stream refuses new events, which wait in the outboxes. */
  maxEvents: number;
}

/** Defaults: a 10-minute duplicate window, no age limit, 2 million events per stream (~1 GB at the ~450 bytes an event takes in the store). */
export const defaultStreamLimits: StreamLimits = {
  duplicateWindowMs: 10 * 60 * 1000,
  maxAgeMs: 0,
  maxEvents: 2_000_000,
};

const MS = 1_000_000;

type WantedStream = Partial<StreamConfig> & { name: string; max_msgs: number };

function config(stream: { name: string; subjects: readonly string[] }, limits: StreamLimits): WantedStream {
  return {
    name: stream.name,
    subjects: [...stream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // A full stream refuses what comes next (the relay keeps it in the outbox and retries) instead of
    // dropping its oldest events, which a consumer far behind may not have applied yet, and which a
    // rebuild replays: nothing is lost without a word, and raising STREAM_MAX_EVENTS lets the events on.
    discard: DiscardPolicy.New,
    duplicate_window: limits.duplicateWindowMs * MS,
    max_age: limits.maxAgeMs * MS,
    // The limit is a count, not a size: nats-server before 2.10 checks a new message against
    // max_bytes without the subject and the record's overhead, stores it, then finds the stream over
    // its size and deletes the oldest messages even under DiscardNew (nats-io/nats-server#4771, #4775);
    // its count check is exact.
    max_msgs: limits.maxEvents,
    max_bytes: -1,
    num_replicas: 1,
  };
}

/**
 * Creates Orderly's streams, or updates them to this configuration; safe to
 * run from every process at once. A stream's limit is only ever raised:
 * JetStream meets a lower one by deleting the oldest events at once, which a
 * consumer far behind may not have applied, so one process started with a
 * smaller STREAM_MAX_EVENTS than the rest must not shrink the streams
 * (lowering it on purpose is done with the nats CLI).
 */
export async function ensureStreams(jsm: JetStreamManager, limits: StreamLimits = defaultStreamLimits): Promise<void> {
  for (const stream of Object.values(streams)) {
    const wanted = config(stream, limits);
    try {
      await updateStream(jsm, wanted);
    } catch (error) {
      if (!/stream not found/i.test(String(error))) throw error;
      try {
        await jsm.streams.add(wanted);
      } catch (addError) {
        // Another process created it in between: bring it to this configuration.
        if (!/already in use/i.test(String(addError))) throw addError;
        await updateStream(jsm, wanted);
      }
    }
  }
}

/**
 * Brings a stream to `wanted`, keeping its event limit where that is larger (or none). A stream
 * with no event limit but a size limit (as Orderly made them before) gets the event limit, never
 * below the events it holds, and loses the size limit.
 */
async function updateStream(jsm: JetStreamManager, wanted: WantedStream): Promise<void> {
  const { config: current, state } = await jsm.streams.info(wanted.name);
  const unlimited = current.max_msgs < 0 && current.max_bytes < 0;
  const maxMsgs = unlimited || wanted.max_msgs < 0 ? -1 : Math.max(current.max_msgs, wanted.max_msgs, state.messages);
  await jsm.streams.update(wanted.name, { ...wanted, max_msgs: maxMsgs });
}

/** Creates a durable pull consumer with explicit ack (or updates it). Deliveries are unlimited; the consumer dead-letters itself. */
export async function ensureDurableConsumer(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filterSubject: string,
  ackWaitMs = 5000,
): Promise<void> {
  const wanted = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filterSubject,
    ack_wait: ackWaitMs * MS,
    max_ack_pending: 1000,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(stream, durable);
    await jsm.consumers.update(stream, durable, { ack_wait: wanted.ack_wait, max_ack_pending: wanted.max_ack_pending, max_deliver: -1 });
  } catch (error) {
    if (!/consumer not found/i.test(String(error))) throw error;
    await jsm.consumers.add(stream, wanted);
  }
}
