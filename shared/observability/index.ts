export { startTracing, tracer, recordsSpans, TRACER_NAME, type Tracing, type TracingOptions } from "./tracing.js";
export { traceparentOf, activeTraceparent, activeTraceIds, spanIds, contextFromTraceparent, endSpanWithError, withSpan } from "./trace-context.js";
export { ProcessMetrics, latencyBuckets, registerDependencyMetrics, registerEventMetrics, registerHealthMetric } from "./metrics.js";
export { RequestWindow, quantileFromBuckets, type RouteSummary } from "./request-window.js";
export { EventLoopLag } from "./event-loop-lag.js";
export { dependencyStatuses, eventStatuses, type ProcessStatus, type DependencyStatus, type ConsumerStatus } from "./process-status.js";
export { statusReporter, type StatusSources } from "./status-reporter.js";
export { startAdminServer, type AdminServer, type AdminServerOptions } from "./admin-server.js";
export { startServiceAdmin, type ServiceAdminOptions } from "./service-admin.js";
