import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { describe, expect, test } from "vitest";
import { RetryInfoSchema } from "../../proto/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../proto/gen/google/rpc/status_pb.js";
import { Code } from "./code.js";
import { httpStatusFor } from "./http-status.js";
import { OrderlyError } from "./orderly-error.js";
import { fromStatus, toStatusBinary, toStatusJson } from "./status.js";

describe("httpStatusFor", () => {
  test.each([
    [Code.INVALID_ARGUMENT, 400],
    [Code.FAILED_PRECONDITION, 400],
    [Code.OUT_OF_RANGE, 400],
    [Code.UNAUTHENTICATED, 401],
    [Code.PERMISSION_DENIED, 403],
    [Code.NOT_FOUND, 404],
    [Code.ALREADY_EXISTS, 409],
    [Code.ABORTED, 409],
    [Code.RESOURCE_EXHAUSTED, 429],
    [Code.CANCELLED, 499],
    [Code.UNIMPLEMENTED, 501],
    [Code.UNAVAILABLE, 503],
    [Code.DEADLINE_EXCEEDED, 504],
    [Code.INTERNAL, 500],
    [Code.UNKNOWN, 500],
    [Code.DATA_LOSS, 500],
  ])("maps gRPC code %s to HTTP %s as grpc-gateway does", (code, status) => {
    expect(httpStatusFor(code)).toBe(status);
  });

  test("refines a few reasons HTTP has a precise status for", () => {
    expect(httpStatusFor(Code.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED")).toBe(422);
    expect(httpStatusFor(Code.INVALID_ARGUMENT, "PAYLOAD_TOO_LARGE")).toBe(413);
    expect(httpStatusFor(Code.UNIMPLEMENTED, "METHOD_NOT_ALLOWED")).toBe(405);
    expect(httpStatusFor(Code.INVALID_ARGUMENT, "VALIDATION_FAILED")).toBe(400);
  });
});

describe("google.rpc.Status round trip", () => {
  test("keeps code, message, reason, metadata and field violations", () => {
    const error = new OrderlyError("INSUFFICIENT_STOCK", "not enough", {
      metadata: { sku: "A-1" },
      violations: [{ field: "items[0].quantity", description: "too many" }],
    });
    const back = fromStatus(error.code, "ignored", toStatusBinary(error));
    expect(back).toMatchObject({ code: Code.FAILED_PRECONDITION, reason: "INSUFFICIENT_STOCK", message: "not enough", metadata: { sku: "A-1" } });
    expect(back.violations).toEqual([{ field: "items[0].quantity", description: "too many" }]);
  });

  test("renders the proto3 JSON a client sees", () => {
    expect(toStatusJson(new OrderlyError("ORDER_NOT_FOUND", "no order", { metadata: { orderId: "x" } }))).toEqual({
      code: 5,
      message: "no order",
      details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "ORDER_NOT_FOUND", domain: "orderly", metadata: { orderId: "x" } }],
    });
  });

  test("an error that says when to retry carries a google.rpc.RetryInfo too, for gRPC clients (which get no Retry-After)", () => {
    const error = new OrderlyError("RATE_LIMITED", "too many requests", { metadata: { retryAfterSeconds: "3" } });
    expect(toStatusJson(error).details).toEqual([
      { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "RATE_LIMITED", domain: "orderly", metadata: { retryAfterSeconds: "3" } },
      { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "3s" },
    ]);
    const status = fromBinary(StatusSchema, toStatusBinary(error));
    expect(status.details.map((detail) => anyUnpack(detail, RetryInfoSchema)?.retryDelay?.seconds).filter((s) => s !== undefined)).toEqual([3n]);
    // The same wait as HTTP's Retry-After: a second for an unavailable dependency that names none; none for a refusal.
    const retryInfoOf = (e: OrderlyError) => (toStatusJson(e).details as { "@type": string; retryDelay?: string }[]).find((d) => d["@type"].endsWith("RetryInfo"))?.retryDelay;
    expect([retryInfoOf(new OrderlyError("DEPENDENCY_UNAVAILABLE", "down")), retryInfoOf(new OrderlyError("INSUFFICIENT_STOCK", "no"))]).toEqual(["1s", undefined]);
  });

  test("an error without status details gets a generic message, not the transport's", () => {
    const error = fromStatus(Code.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:50052");
    expect(error.reason).toBe("DEPENDENCY_UNAVAILABLE");
    expect(error.message).not.toContain("127.0.0.1");
  });

  test("anything thrown becomes INTERNAL without leaking its message", () => {
    const error = OrderlyError.from(new TypeError("cannot read properties of undefined (reading 'x') at /srv/app.ts:10"));
    expect(error).toMatchObject({ code: Code.INTERNAL, reason: "INTERNAL", message: "internal error" });
  });
});
