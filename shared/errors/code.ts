/**
 * The canonical gRPC status codes (google.rpc.Code), so that code outside a
 * service's entry file never needs to import grpc-js to name one.
 */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** Returns the SCREAMING_CASE name of a code, e.g. "NOT_FOUND". */
export function codeName(code: Code): string {
  return Code[code] ?? "UNKNOWN";
}
