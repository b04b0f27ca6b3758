import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "nats";
import { streams } from "./subjects.js";

/** Limits of the event streams. Rebuilding read models replays what the streams still hold. */
export interface StreamLimits {
  /** How long JetStream drops a re-published event id (ns are derived). */
  duplicateWindowMs: number;
  /** Oldest event kept (0: no age limit). */
  maxAgeMs: number;
  /** Largest stream size in bytes: a full stream refuses new events, which wait in the outboxes. */
  maxBytes: number;
}

/** Defaults: a 10-minute duplicate window, no age limit, 1 GiB per stream. */
export const defaultStreamLimits: StreamLimits = {
  duplicateWindowMs: 10 * 60 * 1000,
  maxAgeMs: 0,
  maxBytes: 1024 * 1024 * 1024,
};

const MS = 1_000_000;

function config(stream: { name: string; subjects: readonly string[] }, limits: StreamLimits): Partial<StreamConfig> & { name: string; max_bytes: number } {
  return {
    name: stream.name,
    subjects: [...stream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    // A full stream refuses what comes next (the relay keeps it in the outbox and retries) instead of
    // dropping its oldest events, which a consumer far behind may not have applied yet, and which a
    // rebuild replays: nothing is lost without a word, and raising STREAM_MAX_BYTES lets the events on.
    discard: DiscardPolicy.New,
    duplicate_window: limits.duplicateWindowMs * MS,
    max_age: limits.maxAgeMs * MS,
    max_bytes: limits.maxBytes,
    num_replicas: 1,
  };
}

/**
 * Creates Orderly's streams, or updates them to this configuration; safe to
 * run from every process at once. A stream's size limit is only ever raised:
 * JetStream meets a lower one by deleting the oldest events at once, which a
 * consumer far behind may not have applied, so one process started with a
 * smaller STREAM_MAX_BYTES than the rest must not shrink the streams
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

/** Brings a stream to `wanted`, keeping its size limit where that is larger (or none). */
async function updateStream(jsm: JetStreamManager, wanted: Partial<StreamConfig> & { name: string; max_bytes: number }): Promise<void> {
  const current = (await jsm.streams.info(wanted.name)).config.max_bytes;
  const maxBytes = current < 0 || wanted.max_bytes < 0 ? -1 : Math.max(current, wanted.max_bytes);
  await jsm.streams.update(wanted.name, { ...wanted, max_bytes: maxBytes });
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
