/** gRPC metadata keys Orderly sets and reads. */
export const metadataKeys = {
  requestId: "x-request-id",
  statusDetails: "grpc-status-details-bin",
} as const;
