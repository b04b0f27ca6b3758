export { streams, subjectOf } from "./subjects.js";
export { connectNats } from "./nats-connection.js";
export { ensureStreams, ensureDurableConsumer, defaultStreamLimits, type StreamLimits } from "./stream-setup.js";
export { outboxMigration, outboxTraceMigration, inboxMigration } from "./schema.js";
export { Outbox } from "./outbox.js";
export { OutboxRelay, type OutboxRelayOptions, type OutboxStats } from "./outbox-relay.js";
export { EventConsumer, type EventConsumerOptions, type EventHandler, type ConsumerStats, type ConsumerLag } from "./event-consumer.js";
export { newEvent, type EventPayload, type EventMeta } from "./new-event.js";
export { startEventRuntime, type EventRuntime, type EventRuntimeOptions, type ConsumerSpec } from "./event-runtime.js";
