import { context, propagation, trace, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { Logger } from "../logging/index.js";
import { settlesWithin } from "../process/shutdown.js";
import { LoggedSpanExporter } from "./logged-span-exporter.js";
import { SyncContextManager } from "./sync-context-manager.js";

/** How a process traces. */
export interface TracingOptions {
  /** service.name of every span. */
  service: string;
  /** Where failing and recovering span export is logged. */
  logger: Logger;
  /** OTLP/HTTP endpoint (spans go to `${endpoint}/v1/traces`); undefined: ids only, nothing recorded or exported. */
  otlpEndpoint?: string;
  /** Longest time a finished span waits in the batch before export (ms). */
  scheduleDelayMs?: number;
  /** Extra span processors (unit tests collect spans in memory with one). */
  spanProcessors?: readonly SpanProcessor[];
}

/** A process's tracing, started once in its entry file. */
export interface Tracing {
  /** Whether spans are recorded and exported (an endpoint or a processor was given). */
  readonly recording: boolean;
  /** Exports what is buffered (waiting at most FLUSH_AT_SHUTDOWN_MS for the collector), then stops. */
  shutdown(): Promise<void>;
}

/** How long a shutdown waits for the spans still buffered to be exported. */
const FLUSH_AT_SHUTDOWN_MS = 2000;

/** The name of Orderly's tracer (instrumentation scope). */
export const TRACER_NAME = "orderly";

let recordingProcess = false;

/**
 * Whether this process records spans (startTracing got an endpoint or a
 * processor). Hot paths that only pass a trace context on may skip their
 * own span when nothing would ever see it.
 */
export function recordsSpans(): boolean {
  return recordingProcess;
}

/** The tracer Orderly's instrumentation uses: the process's provider once startTracing ran, a no-op one before. */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/**
 * Starts OpenTelemetry tracing for a process: a synchronous context manager
 * (asynchronous work passes its trace context on explicitly), the W3C
 * TraceContext propagator, and a tracer provider. Registration is global
 * because that is OpenTelemetry's contract (the API finds the provider,
 * context manager and propagator there); it happens once, in a `main`.
 *
 * Without an endpoint spans are never recorded: the sampler drops them all,
 * so a span costs an id and a context, and trace ids still flow through
 * gRPC metadata, the outbox and NATS headers into every log line. The
 * exporter is only loaded when an endpoint is set.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const processors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (options.otlpEndpoint) {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    const url = `${options.otlpEndpoint.replace(/\/+$/, "")}/v1/traces`;
    const exporter = new LoggedSpanExporter(new OTLPTraceExporter({ url }), options.logger, url);
    processors.push(new BatchSpanProcessor(exporter, { scheduledDelayMillis: options.scheduleDelayMs ?? 5000 }));
  }
  const recording = processors.length > 0;
  recordingProcess = recording;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.service }),
    sampler: recording ? new ParentBasedSampler({ root: new AlwaysOnSampler() }) : new AlwaysOffSampler(),
    spanProcessors: processors,
  });
  context.setGlobalContextManager(new SyncContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    recording,
    // The spans still buffered get a moment to be exported; a collector that does not answer (the exporter would wait
    // out its 10 s timeout) must not hold up the process's stop past its grace.
    shutdown: async () => {
      if (!(await settlesWithin(provider.shutdown(), FLUSH_AT_SHUTDOWN_MS))) {
        options.logger.warn({ waitedMs: FLUSH_AT_SHUTDOWN_MS }, "the spans still buffered were not exported: the collector did not answer in time");
      }
    },
  };
}
