import { expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { OrderlyError } from "../errors/index.js";
import { accessRuleOf } from "./server-auth.js";
import { LinkTokens, MAX_CUSTOMER_ID_CHARS, MAX_SUBJECT_CHARS } from "./link-token.js";
import type { Role } from "./principal.js";
import { bearerToken } from "./jwt.js";

test("every Orderly RPC states who may call it; standard services are public", () => {
  for (const service of [InventoryService, OrderService, QueryService]) {
    for (const method of service.methods) {
      const rule = accessRuleOf(method);
      expect({ method: method.name, roles: rule === "public" ? "public" : rule.length > 0 }).toEqual({ method: method.name, roles: true });
    }
  }
  expect(accessRuleOf(Health.method.check)).toBe("public");
  expect(accessRuleOf(InventoryService.method.restock)).toEqual(["admin"]);
});

test("a link token verifies with its key until it expires, and not after tampering or with an expiry further off than its life", () => {
  const key = Buffer.alloc(32, 1);
  const links = new LinkTokens(key);
  const principal = { subject: "customer:alice", customerId: "alice", roles: ["customer" as const] };
  const token = links.sign(principal, 1_000);
  expect(new LinkTokens(key).verify(token, 2_000)).toEqual(principal);
  const reason = (f: () => unknown) => {
    try {
      f();
      return "verified";
    } catch (error) {
      return (error as OrderlyError).reason;
    }
  };
  expect(reason(() => new LinkTokens(key).verify(token, 1_000 + 60_001))).toBe("INVALID_CREDENTIALS");
  // Expired, it is said to be (a call read long after it was sent), not taken for a forgery; a forgery is not told so.
  expect(() => new LinkTokens(key).verify(token, 1_000 + 60_001)).toThrow("the principal on this call has expired: the call was read long after it was sent");
  expect(() => new LinkTokens(Buffer.alloc(32, 2)).verify(token, 1_000 + 60_001)).toThrow("the principal on this call is not valid");
  expect(reason(() => new LinkTokens(Buffer.alloc(32, 2)).verify(token, 2_000))).toBe("INVALID_CREDENTIALS");
  const [payload, mac] = token.split(".");
  const forged = Buffer.from(Buffer.from(payload!, "base64url").toString().replace('"customer"', '"admin"')).toString("base64url");
  expect(reason(() => new LinkTokens(key).verify(`${forged}.${mac}`, 2_000))).toBe("INVALID_CREDENTIALS");
  expect(reason(() => new LinkTokens(key).verify("garbage", 2_000))).toBe("INVALID_CREDENTIALS");
  // Signed by a clock a day ahead (or minted to last): its expiry is further off than a token's life.
  const farAhead = new LinkTokens(key).sign(principal, 1_000 + 86_400_000);
  expect(reason(() => new LinkTokens(key).verify(farAhead, 2_000))).toBe("INVALID_CREDENTIALS");
  expect(new LinkTokens(key).verify(links.sign(principal, 20_000), 2_000)).toEqual(principal);
  expect(() => new LinkTokens(Buffer.alloc(16))).toThrow();
});

test("the longest subject and customer id a bearer token may carry, every character escaped in JSON, with every role, sign into a link token the services take", () => {
  const links = new LinkTokens(Buffer.alloc(32, 1));
  const principal = { subject: "\u0001".repeat(MAX_SUBJECT_CHARS), customerId: "\u0001".repeat(MAX_CUSTOMER_ID_CHARS), roles: ["customer", "admin", "service"] as Role[] };
  expect(links.verify(links.sign(principal, 1_000), 2_000)).toEqual(principal);
  // A subject twice as long would not fit: the bound is what keeps the signed form within the verifier's limit.
  const longer = { ...principal, subject: principal.subject.repeat(2) };
  expect(() => links.verify(links.sign(longer, 1_000), 2_000)).toThrow(/not valid/);
});

test("only `Bearer <token>` is a bearer token", () => {
  expect(bearerToken("Bearer abc.def-ghi_jkl")).toBe("abc.def-ghi_jkl");
  expect(bearerToken("bearer   abc")).toBe("abc");
  expect(bearerToken("Basic dXNlcjpwYXNz")).toBeUndefined();
  expect(bearerToken("Bearer a b")).toBeUndefined();
  expect(bearerToken(undefined)).toBeUndefined();
});
