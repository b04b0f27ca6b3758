/** gRPC metadata keys Orderly sets and reads. */
export const metadataKeys = {
  requestId: "x-request-id",
  /** W3C trace context of the caller's span. */
  traceparent: "traceparent",
  statusDetails: "grpc-status-details-bin",
} as const;

/** What a request id Orderly keeps looks like (see isRequestId); the OpenAPI document states it too. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether a caller's request id (X-Request-Id, x-request-id metadata) is one
 * Orderly keeps: 1-128 letters, digits and `._:-`. Any other is replaced
 * with a new one, as it goes into every log line, span and event of the
 * request.
 */
export function isRequestId(value: string): boolean {
  return REQUEST_ID_PATTERN.test(value);
}
