import { create, createRegistry, fromBinary, toBinary, toJson, type JsonObject } from "@bufbuild/protobuf";
import { anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../proto/gen/google/rpc/error_details_pb.js";
import { StatusSchema, type Status } from "../../proto/gen/google/rpc/status_pb.js";
import { Code, codeName } from "./code.js";
import { retryAfterSecondsOf } from "./http-status.js";
import { defaultReason, isReason } from "./reasons.js";
import { ERROR_DOMAIN, OrderlyError } from "./orderly-error.js";

/** The detail types Orderly puts into a google.rpc.Status. */
export const statusDetailRegistry = createRegistry(ErrorInfoSchema, BadRequestSchema, RetryInfoSchema);

/**
 * Builds the google.rpc.Status for an error: an ErrorInfo, plus a BadRequest when there are violations and a RetryInfo
 * when a client is to try again after a wait (retryAfterSecondsOf: the wait HTTP sends as Retry-After).
 */
export function toStatus(error: OrderlyError): Status {
  const details = [
    anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: error.reason, domain: ERROR_DOMAIN, metadata: { ...error.metadata } })),
  ];
  if (error.violations.length > 0) {
    details.push(anyPack(BadRequestSchema, create(BadRequestSchema, { fieldViolations: error.violations.map((v) => ({ ...v })) })));
  }
  const retryAfter = retryAfterSecondsOf(error);
  if (retryAfter !== undefined && /^\d{1,9}$/.test(retryAfter)) {
    details.push(anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: { seconds: BigInt(retryAfter) } })));
  }
  return create(StatusSchema, { code: error.code, message: error.message, details });
}

/** The binary google.rpc.Status, as gRPC sends it in `grpc-status-details-bin`. */
export function toStatusBinary(error: OrderlyError): Uint8Array {
  return toBinary(StatusSchema, toStatus(error));
}

/** The proto3 JSON of the error's google.rpc.Status, as the gateway returns it. */
export function toStatusJson(error: OrderlyError): JsonObject {
  return toJson(StatusSchema, toStatus(error), { registry: statusDetailRegistry }) as JsonObject;
}

/**
 * Rebuilds an OrderlyError from a status code, message and (when the peer
 * sent one) the binary google.rpc.Status. Without details the message is
 * replaced by a generic one, since it came from the transport, not from a service.
 */
export function fromStatus(code: Code, message: string, statusBinary?: Uint8Array): OrderlyError {
  if (statusBinary === undefined) {
    return new OrderlyError(defaultReason(code), genericMessage(code), { code, cause: new Error(message) });
  }
  const status = fromBinary(StatusSchema, statusBinary);
  let reason = defaultReason(code);
  let metadata: Record<string, string> = {};
  let violations: { field: string; description: string }[] = [];
  for (const detail of status.details) {
    const info = anyUnpack(detail, ErrorInfoSchema);
    if (info !== undefined && isReason(info.reason)) {
      reason = info.reason;
      metadata = { ...info.metadata };
    }
    const badRequest = anyUnpack(detail, BadRequestSchema);
    if (badRequest !== undefined) {
      violations = badRequest.fieldViolations.map((v) => ({ field: v.field, description: v.description }));
    }
  }
  return new OrderlyError(reason, status.message || message, { code, metadata, violations, remote: true });
}

function genericMessage(code: Code): string {
  switch (code) {
    case Code.DEADLINE_EXCEEDED:
      return "deadline exceeded";
    case Code.UNAVAILABLE:
      return "a service this request needs is unavailable";
    case Code.CANCELLED:
      return "request cancelled";
    default:
      return `request failed (${codeName(code)})`;
  }
}
