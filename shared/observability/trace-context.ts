import { ROOT_CONTEXT, SpanStatusCode, context, isSpanContextValid, trace, type Context, type Span, type SpanContext } from "@opentelemetry/api";

/**
 * W3C Trace Context §4.3: version 00 is exactly its four fields; a later
 * version (not ff, which is invalid) is read for the same four fields and may
 * carry more after another dash.
 */
const TRACEPARENT = /^(?:00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})|(?!00|ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?)$/;

/**
 * The W3C `traceparent` of a span context. Written out here rather than
 * through the propagation API's carrier, because it is called per message
 * on the relay's and the gRPC client's hot paths.
 */
export function traceparentOf(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & 1).toString(16)}`;
}

/** The traceparent of a context's span (the active context's by default), or undefined outside any trace. */
export function traceparentIn(traceContext: Context = context.active()): string | undefined {
  const span = trace.getSpan(traceContext);
  if (span === undefined) return undefined;
  const spanContext = span.spanContext();
  return isSpanContextValid(spanContext) ? traceparentOf(spanContext) : undefined;
}

/** A context whose remote parent is this traceparent; ROOT_CONTEXT (a new trace) when it is missing or malformed. */
export function contextFromTraceparent(traceparent: string | undefined): Context {
  const match = traceparent ? TRACEPARENT.exec(traceparent) : null;
  if (match === null) return ROOT_CONTEXT;
  const [traceId, spanId, flags] = match[1] === undefined ? match.slice(4, 7) : match.slice(1, 4);
  const spanContext: SpanContext = { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16) & 1, isRemote: true };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : ROOT_CONTEXT;
}

/** The trace id and span id of a context's span (the active context's by default; for log lines), or undefined outside any trace. */
export function traceIdsIn(traceContext: Context = context.active()): { traceId: string; spanId: string } | undefined {
  const span = trace.getSpan(traceContext);
  return span === undefined ? undefined : spanIds(span);
}

/** The trace id and span id of a span (for log lines), or undefined when its context is not valid. */
export function spanIds(span: Span): { traceId: string; spanId: string } | undefined {
  const spanContext = span.spanContext();
  return isSpanContextValid(spanContext) ? { traceId: spanContext.traceId, spanId: spanContext.spanId } : undefined;
}

/** Ends a span with an error status and the error recorded (for a recording span). */
export function endSpanWithError(span: Span, error: unknown, attributes: Record<string, string | number> = {}): void {
  if (span.isRecording()) {
    span.setAttributes(attributes);
    if (error instanceof Error) span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}

/** Runs `fn` with `span` as the active span for its synchronous run only (SyncContextManager): what `fn` leaves for later passes its trace on itself. */
export function withSpan<T>(span: Span, fn: () => T, parent: Context = context.active()): T {
  return context.with(trace.setSpan(parent, span), fn);
}
