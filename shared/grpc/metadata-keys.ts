/** gRPC metadata keys Orderly sets and reads. */
export const metadataKeys = {
  requestId: "x-request-id",
  /** W3C trace context of the caller's span. */
  traceparent: "traceparent",
  statusDetails: "grpc-status-details-bin",
} as const;
