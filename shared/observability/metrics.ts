import { SpanKind, context, trace, type Context } from "@opentelemetry/api";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { OrderlyError, codeName } from "../errors/index.js";
import type { EventRuntime } from "../events/index.js";
import type { HealthState, Interceptor } from "../grpc/index.js";
import type { BreakerState, DependencyPolicy } from "../resilience/index.js";
import type { TransactionTimer } from "../sqlite/index.js";
import { EVENT_LOOP_SAMPLE_MS } from "./event-loop-lag.js";
import { endSpanWithError } from "./trace-context.js";
import { tracer } from "./tracing.js";

/** Latency buckets (seconds) of every duration histogram: fine enough for p50/p95/p99 from 1 ms to 10 s. */
export const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const breakerStates: readonly BreakerState[] = ["closed", "open", "half-open", "isolated"];

/** A gauge of one number, read when the registry is collected (left as it was while `read` answers undefined). */
export function readingGauge(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const value = read();
      if (value !== undefined) this.set(value);
    },
  });
}

/**
 * Per dependency (the resilience policy of each downstream): calls,
 * retries, failures and rejections, the breaker's state (one gauge per
 * state, 1 for the current), and the bulkhead's slots in use and queue.
 */
export function registerDependencyMetrics(registry: Registry, policies: readonly DependencyPolicy[]): void {
  const duration = new Histogram({
    name: "orderly_dependency_call_duration_seconds",
    help: "Time of a call to a dependency as its caller saw it (a wait for a bulkhead slot, retries and the waits between them included), by method and by outcome as in orderly_dependency_calls_total",
    labelNames: ["dependency", "method", "outcome"],
    buckets: latencyBuckets,
    registers: [registry],
  });
  for (const p of policies) p.onCallEnded((seconds, outcome, method) => duration.observe({ dependency: p.name, method, outcome }, seconds));
  new Counter({
    name: "orderly_dependency_calls_total",
    help: "Calls to a dependency by outcome, counted as they end: ok, refused (it answered with a 4xx about the request, e.g. INSUFFICIENT_STOCK), relayed (it answered with its own dependency's transient error, e.g. inventory unavailable), error (a timeout, the transport, or its own failure), circuit_open, bulkhead_full, cancelled (its caller hung up)",
    labelNames: ["dependency", "outcome"],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of policies) {
        const s = p.stats;
        this.inc({ dependency: p.name, outcome: "ok" }, s.succeeded);
        this.inc({ dependency: p.name, outcome: "refused" }, s.refusals);
        this.inc({ dependency: p.name, outcome: "relayed" }, s.relayed);
        this.inc({ dependency: p.name, outcome: "error" }, s.failures);
        this.inc({ dependency: p.name, outcome: "circuit_open" }, s.rejectedByBreaker);
        this.inc({ dependency: p.name, outcome: "bulkhead_full" }, s.rejectedByBulkhead);
        this.inc({ dependency: p.name, outcome: "cancelled" }, s.cancelled);
      }
    },
  });
  new Counter({
    name: "orderly_dependency_retries_total",
    help: "Retried attempts of calls to a dependency",
    labelNames: ["dependency"],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of policies) this.inc({ dependency: p.name }, p.stats.retries);
    },
  });
  new Gauge({
    name: "orderly_dependency_breaker_state",
    help: "The dependency's circuit breaker: 1 for its current state, 0 for the others",
    labelNames: ["dependency", "state"],
    registers: [registry],
    collect() {
      for (const p of policies) {
        const current = p.breakerState;
        for (const state of breakerStates) this.set({ dependency: p.name, state }, state === current ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "orderly_dependency_bulkhead_in_use",
    help: "Calls to the dependency holding a bulkhead slot",
    labelNames: ["dependency"],
    registers: [registry],
    collect() {
      for (const p of policies) this.set({ dependency: p.name }, p.bulkhead.inUse);
    },
  });
  new Gauge({
    name: "orderly_dependency_bulkhead_queued",
    help: "Calls to the dependency waiting for a bulkhead slot",
    labelNames: ["dependency"],
    registers: [registry],
    collect() {
      for (const p of policies) this.set({ dependency: p.name }, p.bulkhead.queued);
    },
  });
}

/** The outbox relay's backlog and work, and each consumer's lag, redeliveries and dead letters. */
export function registerEventMetrics(registry: Registry, events: EventRuntime): void {
  readingGauge(registry, "orderly_outbox_backlog", "Events in the outbox not yet published", () => events.relay()?.stats().backlog);
  readingGauge(registry, "orderly_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event", () => {
    const age = events.relay()?.stats().oldestUnpublishedAgeMs;
    return age === undefined ? undefined : age / 1000;
  });
  new Counter({
    name: "orderly_outbox_published_total",
    help: "Events the relay published (duplicates JetStream dropped included)",
    registers: [registry],
    collect() {
      const relay = events.relay();
      this.reset();
      if (relay) this.inc(relay.stats().published);
    },
  });
  new Counter({
    name: "orderly_outbox_publish_failures_total",
    help: "Relay batches that failed to publish (NATS down or slow)",
    registers: [registry],
    collect() {
      const relay = events.relay();
      this.reset();
      if (relay) this.inc(relay.stats().failures);
    },
  });
  new Counter({
    name: "orderly_consumer_events_total",
    help: "Events a durable consumer handled, by outcome (applied, ignored, duplicate, retried, dead_lettered, deferred)",
    labelNames: ["consumer", "outcome"],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of events.consumers()) {
        this.inc({ consumer: c.durable, outcome: "applied" }, c.stats.applied);
        this.inc({ consumer: c.durable, outcome: "ignored" }, c.stats.ignored);
        this.inc({ consumer: c.durable, outcome: "duplicate" }, c.stats.skippedDuplicates);
        this.inc({ consumer: c.durable, outcome: "retried" }, c.stats.retried);
        this.inc({ consumer: c.durable, outcome: "dead_lettered" }, c.stats.deadLettered);
        this.inc({ consumer: c.durable, outcome: "deferred" }, c.stats.deferred);
      }
    },
  });
  new Gauge({
    name: "orderly_consumer_dead_letters",
    help: "Messages the consumer has dead-lettered (rows in dead_letters)",
    labelNames: ["consumer"],
    registers: [registry],
    collect() {
      for (const c of events.consumers()) this.set({ consumer: c.durable }, c.deadLetterCount());
    },
  });
  new Gauge({
    name: "orderly_consumer_deferred_events",
    help: "Events of a payload type the consumer's code does not know (a newer version's), kept until an upgraded consumer applies them (rows in deferred_events)",
    labelNames: ["consumer"],
    registers: [registry],
    collect() {
      for (const c of events.consumers()) this.set({ consumer: c.durable }, c.deferredCount());
    },
  });
  const lagGauge = (name: string, help: string, pick: (lag: { pending: number; ackPending: number; redelivered: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["consumer"],
      registers: [registry],
      async collect() {
        await Promise.all(
          events.consumers().map(async (c) => {
            const lag = await c.lag().catch(() => undefined);
            // Unknown (NATS away): no sample, rather than the last one held as if it were still true.
            if (lag) this.set({ consumer: c.durable }, pick(lag));
            else this.remove({ consumer: c.durable });
          }),
        );
      },
    });
  lagGauge("orderly_consumer_pending", "Messages in the stream not yet delivered to the consumer (its lag)", (l) => l.pending);
  lagGauge("orderly_consumer_ack_pending", "Messages delivered to the consumer and not yet acked", (l) => l.ackPending);
  lagGauge("orderly_consumer_redelivered", "Messages delivered more than once and not yet acked", (l) => l.redelivered);
  readingGauge(registry, "orderly_nats_connected", "1 while the process is connected to NATS", () => (events.isConnected() ? 1 : 0));
}

/** 1 while every readiness check holds, and each check by name. */
export function registerHealthMetric(registry: Registry, health: HealthState): void {
  new Gauge({
    name: "orderly_ready",
    help: "1 while the process is ready (check=all: a degrading check such as nats failing leaves it ready), and each check",
    labelNames: ["check"],
    registers: [registry],
    collect() {
      const report = health.report();
      this.set({ check: "all" }, health.serving() ? 1 : 0);
      for (const [check, ok] of Object.entries(report)) this.set({ check }, ok ? 1 : 0);
    },
  });
}

/**
 * The Prometheus metrics of one gRPC service process: the runtime's own
 * (event-loop lag, heap, GC, CPU), requests and their duration per RPC,
 * SQLite transaction time, and what the process registers of its
 * dependencies, events and health. Served by the admin server at /metrics.
 */
export class ProcessMetrics {
  readonly registry = new Registry();
  readonly rpcRequests: Counter<"method" | "code">;
  readonly rpcDuration: Histogram<"method">;
  readonly transactionDuration: Histogram<"transaction">;

  constructor(readonly service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.rpcRequests = new Counter({
      name: "orderly_rpc_server_requests_total",
      help: "RPCs served, by full method name and gRPC status code",
      labelNames: ["method", "code"],
      registers: [this.registry],
    });
    this.rpcDuration = new Histogram({
      name: "orderly_rpc_server_duration_seconds",
      help: "Time to serve an RPC, by full method name",
      labelNames: ["method"],
      buckets: latencyBuckets,
      registers: [this.registry],
    });
    this.transactionDuration = new Histogram({
      name: "orderly_sqlite_transaction_duration_seconds",
      help: "Time of a SQLite write transaction (waiting for the lock included), by name",
      labelNames: ["transaction"],
      buckets: latencyBuckets,
      registers: [this.registry],
    });
  }

  /** An interceptor counting each call and timing it, by method and code (put it outermost but for tracing). */
  readonly observeCalls: Interceptor = (next) => async (request, context) => {
    const started = performance.now();
    let code = "OK";
    try {
      return await next(request, context);
    } catch (error) {
      code = codeName(OrderlyError.from(error).code);
      throw error;
    } finally {
      this.rpcRequests.inc({ method: context.method, code });
      this.rpcDuration.observe({ method: context.method }, (performance.now() - started) / 1000);
    }
  };

  /** Times each SQLite transaction, in a span of its own when inside a trace. */
  readonly transactions: TransactionTimer = {
    run: <T>(name: string, fn: () => T, traceContext: Context = context.active()): T => {
      const started = performance.now();
      const span = trace.getSpan(traceContext) === undefined ? undefined : tracer().startSpan(`sqlite ${name}`, { kind: SpanKind.INTERNAL }, traceContext);
      if (span?.isRecording()) span.setAttributes({ "db.system": "sqlite", "db.operation.name": name });
      try {
        const result = fn();
        span?.end();
        return result;
      } catch (error) {
        if (span) endSpanWithError(span, error);
        throw error;
      } finally {
        this.transactionDuration.observe({ transaction: name }, (performance.now() - started) / 1000);
      }
    },
  };

  /** Adds the metrics of the process's dependencies (their resilience policies). */
  watchDependencies(policies: readonly DependencyPolicy[]): this {
    registerDependencyMetrics(this.registry, policies);
    return this;
  }

  /** Adds the metrics of its outbox relay and consumers. */
  watchEvents(events: EventRuntime): this {
    registerEventMetrics(this.registry, events);
    return this;
  }

  /** Adds its readiness. */
  watchHealth(health: HealthState): this {
    registerHealthMetric(this.registry, health);
    return this;
  }
}
