export { startTracing, tracer, recordsSpans, type Tracing, type TracingOptions } from "./tracing.js";
export { traceparentOf, activeTraceparent, activeTraceIds, spanIds, contextFromTraceparent, endSpanWithError, withSpan } from "./trace-context.js";
export { ProcessMetrics, latencyBuckets, registerDependencyMetrics } from "./metrics.js";
export { RequestWindow, quantileFromBuckets, type RouteSummary } from "./request-window.js";
export { EventLoopLag } from "./event-loop-lag.js";
export { type ProcessStatus, type DependencyStatus, type ConsumerStatus } from "./process-status.js";
export { statusReporter, type StatusSources } from "./status-reporter.js";
export { startServiceAdmin, type ServiceAdminOptions } from "./service-admin.js";
export { readAtMost } from "./read-at-most.js";
