import { Code } from "./code.js";

/**
 * The reasons any call can meet: how it came (its JSON, headers, credentials,
 * rate) and the state of the system (deadlines, dependencies, storage), each
 * with the status code it always travels with.
 */
const commonReasons = {
  /** The HTTP body is not valid JSON. */
  MALFORMED_JSON: Code.INVALID_ARGUMENT,
  /** A JSON or query field is unknown, or its value has the wrong type. */
  INVALID_FIELD: Code.INVALID_ARGUMENT,
  /** Fields broke a rule; a BadRequest detail lists each violation. */
  VALIDATION_FAILED: Code.INVALID_ARGUMENT,
  /** X-Request-Timeout or Idempotency-Key is malformed (a malformed X-Request-Id is replaced by one of the gateway's, not refused). */
  INVALID_HEADER: Code.INVALID_ARGUMENT,
  /** The request body is larger than the gateway accepts (HTTP 413). */
  PAYLOAD_TOO_LARGE: Code.INVALID_ARGUMENT,
  /** The request carries no credentials (HTTP: no `Authorization: Bearer` token). */
  AUTHENTICATION_REQUIRED: Code.UNAUTHENTICATED,
  /** The bearer token (or a link's signed principal) is malformed, forged, expired, or for another issuer or audience. */
  INVALID_CREDENTIALS: Code.UNAUTHENTICATED,
  /** The caller's role may not call this RPC (e.g. a customer restocking). */
  ROLE_NOT_ALLOWED: Code.PERMISSION_DENIED,
  /** An admin port's request names a Host no operator would use for it (DNS rebinding): not an address, localhost or in ORDERLY_ADMIN_HOSTS. */
  HOST_NOT_ALLOWED: Code.PERMISSION_DENIED,
  /** The caller sent more requests than its rate limit allows (HTTP 429 with Retry-After). */
  RATE_LIMITED: Code.RESOURCE_EXHAUSTED,
  /** The request body comes in a content coding (Content-Encoding: gzip, say) the gateway does not decode (HTTP 415). */
  UNSUPPORTED_CONTENT_ENCODING: Code.INVALID_ARGUMENT,
  /** The request body comes in a transfer coding other than chunked (Transfer-Encoding: gzip, chunked, say), which the gateway does not decode. */
  UNSUPPORTED_TRANSFER_ENCODING: Code.INVALID_ARGUMENT,
  /** The JSON body nests objects or arrays deeper than the gateway accepts. */
  JSON_TOO_DEEP: Code.INVALID_ARGUMENT,
  /** The request's headers are larger than the gateway accepts (HTTP 431). */
  HEADERS_TOO_LARGE: Code.INVALID_ARGUMENT,
  /** The request is not valid HTTP/1.1 (bad characters in the request line or a header, an unknown method). */
  MALFORMED_REQUEST: Code.INVALID_ARGUMENT,
  /** The client did not send its request headers in time, or its body within the request's deadline (HTTP 408). */
  REQUEST_TIMEOUT: Code.DEADLINE_EXCEEDED,
  /** The request's Expect header asks for something other than 100-continue, which is all the gateway meets (HTTP 417). */
  EXPECTATION_FAILED: Code.INVALID_ARGUMENT,
  /** No route matches the path. */
  ROUTE_NOT_FOUND: Code.NOT_FOUND,
  /** The path exists but not for this HTTP method (HTTP 405). */
  METHOD_NOT_ALLOWED: Code.UNIMPLEMENTED,
  /** The service does not have the RPC a route calls (an older version than the gateway's protos, mid-upgrade). */
  NOT_IMPLEMENTED: Code.UNIMPLEMENTED,
  /** The call's deadline passed before it completed. */
  DEADLINE_EXCEEDED: Code.DEADLINE_EXCEEDED,
  /** The caller went away and the call was abandoned. */
  CANCELLED: Code.CANCELLED,
  /** A service this call needs did not answer or failed. */
  DEPENDENCY_UNAVAILABLE: Code.UNAVAILABLE,
  /** A dependency's circuit breaker is open: failing fast until it recovers. */
  CIRCUIT_OPEN: Code.UNAVAILABLE,
  /** Too many calls to a dependency are in flight; retry later. */
  BULKHEAD_FULL: Code.RESOURCE_EXHAUSTED,
  /** The caller already has as many requests in flight at the gateway as it may (GATEWAY_MAX_IN_FLIGHT_PER_CALLER); retry when one ends. */
  TOO_MANY_IN_FLIGHT: Code.RESOURCE_EXHAUSTED,
  /** The gateway is shedding load (too many requests in flight, or its event loop lags); retry after Retry-After. */
  OVERLOADED: Code.UNAVAILABLE,
  /** The service is not ready, or is shutting down. */
  SERVICE_UNAVAILABLE: Code.UNAVAILABLE,
  /** The service cannot write or read its database now (its disk full, an I/O error, read-only): retry after Retry-After; a write with the same Idempotency-Key. */
  STORAGE_UNAVAILABLE: Code.UNAVAILABLE,
  /** An unexpected error; its details are in the server's log, under the request id. */
  INTERNAL: Code.INTERNAL,
} as const satisfies Record<string, Code>;

/**
 * The reasons an RPC answers with only where its proto declares them
 * (option orderly.errors.v1.errors): what its handler decides about the
 * request. A new reason goes here when it is a handler's answer to what the
 * call asks, above when any call can meet it.
 */
export const declaredReasons = {
  /** The page_token is not one this API issued for this query. */
  INVALID_PAGE_TOKEN: Code.INVALID_ARGUMENT,
  /** The Idempotency-Key was used before with a different request (HTTP 422). */
  IDEMPOTENCY_KEY_REUSED: Code.INVALID_ARGUMENT,
  /** A customer acting for another customer (creating an order for, or listing the orders of). */
  NOT_YOUR_CUSTOMER: Code.PERMISSION_DENIED,
  /** No order has this id (or it is not visible to the caller). */
  ORDER_NOT_FOUND: Code.NOT_FOUND,
  /** No item has this SKU. */
  ITEM_NOT_FOUND: Code.NOT_FOUND,
  /** An order line names a SKU the inventory does not know. */
  UNKNOWN_SKU: Code.FAILED_PRECONDITION,
  /** Not enough available stock for an order line. */
  INSUFFICIENT_STOCK: Code.FAILED_PRECONDITION,
  /** The lines of an order are priced in different currencies. */
  MIXED_CURRENCIES: Code.FAILED_PRECONDITION,
  /** The order is REJECTED, so it cannot be cancelled. */
  ORDER_NOT_CANCELLABLE: Code.FAILED_PRECONDITION,
  /** The order's reservation was released; it cannot be reserved again. */
  RESERVATION_RELEASED: Code.FAILED_PRECONDITION,
  /** A reservation for this order exists with other lines. */
  RESERVATION_MISMATCH: Code.FAILED_PRECONDITION,
  /** An order's stock is released only once the order has ended (cancelled or rejected); it is confirmed or pending. */
  ORDER_NOT_ENDED: Code.FAILED_PRECONDITION,
  /** The restock would take a SKU's stock past its limit. */
  STOCK_LIMIT_EXCEEDED: Code.FAILED_PRECONDITION,
  /** The caller already has as many reads waiting for a `minVersion` as it may (QUERY_MAX_WAITS_PER_CALLER); retry when one ends. */
  TOO_MANY_WAITS: Code.RESOURCE_EXHAUSTED,
  /** The read model had not reached the order's `minVersion` when the read stopped waiting (its deadline near, or QUERY_MAX_WAIT_MS): read again later. */
  VERSION_NOT_REACHED: Code.DEADLINE_EXCEEDED,
} as const satisfies Record<string, Code>;

/**
 * Every machine-readable error reason Orderly returns, in `ErrorInfo.reason`,
 * with the status code it always travels with. The README's table of error
 * reasons is this list.
 */
export const reasons = { ...commonReasons, ...declaredReasons } as const;

/** A reason is in one group only: this fails to compile should one be named in both. */
const inOneGroupOnly: [keyof typeof commonReasons & keyof typeof declaredReasons] extends [never] ? true : never = true;
void inOneGroupOnly;

/** A machine-readable error reason. */
export type Reason = keyof typeof reasons;

/** The reason used when an error arrives with a code but without one. */
export function defaultReason(code: Code): Reason {
  switch (code) {
    case Code.DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case Code.CANCELLED:
      return "CANCELLED";
    case Code.UNAVAILABLE:
      return "DEPENDENCY_UNAVAILABLE";
    case Code.RESOURCE_EXHAUSTED:
      return "BULKHEAD_FULL";
    case Code.INVALID_ARGUMENT:
    case Code.OUT_OF_RANGE:
      return "VALIDATION_FAILED";
    case Code.NOT_FOUND:
      return "ROUTE_NOT_FOUND";
    case Code.UNIMPLEMENTED:
      return "NOT_IMPLEMENTED";
    case Code.UNAUTHENTICATED:
      return "INVALID_CREDENTIALS";
    case Code.PERMISSION_DENIED:
      return "ROLE_NOT_ALLOWED";
    default:
      return "INTERNAL";
  }
}

/** Whether a string is one of Orderly's reasons. */
export function isReason(value: string): value is Reason {
  return Object.hasOwn(reasons, value);
}
