import { Code } from "./code.js";
import type { Reason } from "./reasons.js";

/**
 * Reasons that HTTP has a more precise status for than their gRPC code's
 * standard mapping gives.
 */
const httpStatusByReason: Partial<Record<Reason, number>> = {
  PAYLOAD_TOO_LARGE: 413,
  IDEMPOTENCY_KEY_REUSED: 422,
  METHOD_NOT_ALLOWED: 405,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  EXPECTATION_FAILED: 417,
  UNSUPPORTED_CONTENT_ENCODING: 415,
};

/**
 * The HTTP status for an error: the standard gRPC→HTTP mapping (as
 * grpc-gateway and Envoy use it), refined by the reasons above.
 */
export function httpStatusFor(code: Code, reason?: Reason): number {
  const refined = reason === undefined ? undefined : httpStatusByReason[reason];
  if (refined !== undefined) return refined;
  switch (code) {
    case Code.OK:
      return 200;
    case Code.CANCELLED:
      return 499;
    case Code.UNKNOWN:
      return 500;
    case Code.INVALID_ARGUMENT:
      return 400;
    case Code.DEADLINE_EXCEEDED:
      return 504;
    case Code.NOT_FOUND:
      return 404;
    case Code.ALREADY_EXISTS:
      return 409;
    case Code.PERMISSION_DENIED:
      return 403;
    case Code.RESOURCE_EXHAUSTED:
      return 429;
    case Code.FAILED_PRECONDITION:
      return 400;
    case Code.ABORTED:
      return 409;
    case Code.OUT_OF_RANGE:
      return 400;
    case Code.UNIMPLEMENTED:
      return 501;
    case Code.INTERNAL:
      return 500;
    case Code.UNAVAILABLE:
      return 503;
    case Code.DATA_LOSS:
      return 500;
    case Code.UNAUTHENTICATED:
      return 401;
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/**
 * How long a client is told to wait before it tries again, in whole seconds (HTTP's Retry-After, gRPC's RetryInfo): the
 * wait the error names (`retryAfterSeconds`), else a second for any UNAVAILABLE or RESOURCE_EXHAUSTED (503, 429);
 * undefined for the rest, which trying again as they are will not mend.
 */
export function retryAfterSecondsOf(error: { code: Code; metadata: Readonly<Record<string, string>> }): string | undefined {
  return error.metadata.retryAfterSeconds ?? (error.code === Code.UNAVAILABLE || error.code === Code.RESOURCE_EXHAUSTED ? "1" : undefined);
}
