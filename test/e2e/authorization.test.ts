import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { routesOf } from "../../gateway/routes/index.js";
import { Code, OrderlyError } from "../../shared/errors/index.js";
import { connect, createClient, type Connection } from "../../shared/grpc/index.js";
import { LinkTokens, PRINCIPAL_METADATA_KEY } from "../../shared/security/index.js";
import { DEV_AUDIENCE, DEV_ISSUER, mintDevToken } from "../../scripts/dev-security.js";
import { reasonOf, startSystem, type Caller, type System } from "../helpers/system.js";

/** What one caller gets from one route: the status, and the reason of an error. */
type Outcome = { status: number; reason?: string };

const UNAUTHENTICATED: Outcome = { status: 401, reason: "AUTHENTICATION_REQUIRED" };
const OK: Outcome = { status: 200 };
const FORBIDDEN_ROLE: Outcome = { status: 403, reason: "ROLE_NOT_ALLOWED" };
const NOT_YOUR_CUSTOMER: Outcome = { status: 403, reason: "NOT_YOUR_CUSTOMER" };
const HIDDEN_ORDER: Outcome = { status: 404, reason: "ORDER_NOT_FOUND" };

/** Data the requests of the matrix refer to. */
interface Fixture {
  sku: string;
  /** Orders of bob and of alice, and one more of bob that the admin cancels. */
  bobOrder: string;
  aliceOrder: string;
  bobOrderForAdmin: string;
}

/**
 * Every route, how to call it, and what each caller gets. "other" is alice
 * acting on bob's resources (or on admin-only routes); "own" is alice on her
 * own. A route the gateway serves but this table lacks fails the test.
 */
const matrix: Record<string, {
  request: (f: Fixture, customer: string) => { path: string; body?: unknown };
  own?: (f: Fixture) => { path: string; body?: unknown };
  other: Outcome;
}> = {
  "GET /v1/inventory/{sku}": { request: (f) => ({ path: `/v1/inventory/${f.sku}` }), other: OK },
  "GET /v1/inventory": { request: () => ({ path: "/v1/inventory" }), other: OK },
  "POST /v1/inventory/{sku}:restock": { request: (f) => ({ path: `/v1/inventory/${f.sku}:restock`, body: { quantity: 1 } }), other: FORBIDDEN_ROLE },
  "POST /v1/orders": {
    request: (f, customer) => ({ path: "/v1/orders", body: { customerId: customer, items: [{ sku: f.sku, quantity: 1 }] } }),
    own: (f) => ({ path: "/v1/orders", body: { customerId: "alice", items: [{ sku: f.sku, quantity: 1 }] } }),
    other: NOT_YOUR_CUSTOMER,
  },
  "POST /v1/orders/{id}:cancel": {
    request: (f) => ({ path: `/v1/orders/${f.bobOrderForAdmin}:cancel`, body: {} }),
    own: (f) => ({ path: `/v1/orders/${f.aliceOrder}:cancel`, body: {} }),
    other: HIDDEN_ORDER,
  },
  "GET /v1/orders/{id}": { request: (f) => ({ path: `/v1/orders/${f.bobOrder}` }), own: (f) => ({ path: `/v1/orders/${f.aliceOrder}` }), other: HIDDEN_ORDER },
  "GET /v1/orders/{id}/timeline": {
    request: (f) => ({ path: `/v1/orders/${f.bobOrder}/timeline` }),
    own: (f) => ({ path: `/v1/orders/${f.aliceOrder}/timeline` }),
    other: HIDDEN_ORDER,
  },
  "GET /v1/customers/{customer_id}/orders": {
    request: () => ({ path: "/v1/customers/bob/orders" }),
    own: () => ({ path: "/v1/customers/alice/orders" }),
    other: NOT_YOUR_CUSTOMER,
  },
  "GET /v1/stock/{sku}": { request: (f) => ({ path: `/v1/stock/${f.sku}` }), other: OK },
  "GET /v1/stock": { request: () => ({ path: "/v1/stock" }), other: OK },
  "GET /v1/sales/daily": { request: () => ({ path: "/v1/sales/daily" }), other: FORBIDDEN_ROLE },
};

const routes = routesOf([OrderService, InventoryService, QueryService]);

function methodOf(key: string): string {
  return key.slice(0, key.indexOf(" "));
}

async function outcome(system: System, key: string, request: { path: string; body?: unknown }, as: Caller): Promise<Outcome> {
  const response = await system.api(methodOf(key), request.path, { body: request.body, as });
  const reason = reasonOf(response.body);
  return response.status < 300 ? { status: 200 } : { status: response.status, ...(reason ? { reason } : {}) };
}

describe("authorization", () => {
  let system: System;
  let fixture: Fixture;

  beforeAll(async () => {
    system = await startSystem();
    const sku = "AUTHZ-1";
    await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 100, name: "Authz widget", unitPriceMinor: "100", currencyCode: "USD" } });
    const order = async (customer: string) => {
      const created = await system.api("POST", "/v1/orders", { body: { customerId: customer, items: [{ sku, quantity: 1 }] }, as: customer });
      expect(created.status).toBe(200);
      // The query side serves order reads; wait for its copy.
      await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { as: customer });
      return created.body.id as string;
    };
    fixture = { sku, bobOrder: await order("bob"), aliceOrder: await order("alice"), bobOrderForAdmin: await order("bob") };
    await system.api("GET", `/v1/stock/${sku}?minVersion=1`);
  }, 120_000);

  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  test("the matrix names every route the gateway serves", () => {
    expect(Object.keys(matrix).sort()).toEqual(routes.map((r) => r.label).sort());
  });

  test("anonymous callers get 401 with a Bearer challenge on every route", async () => {
    for (const key of Object.keys(matrix)) {
      const request = matrix[key]!.request(fixture, "alice");
      expect({ key, ...(await outcome(system, key, request, null)) }).toEqual({ key, ...UNAUTHENTICATED });
    }
    const response = await system.api("GET", "/v1/inventory", { as: null });
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="orderly"');
  });

  test("a customer gets 404 for another customer's orders, 403 for admin routes and other customers, 200 for its own", async () => {
    for (const [key, row] of Object.entries(matrix)) {
      expect({ key, ...(await outcome(system, key, row.request(fixture, "bob"), "alice")) }).toEqual({ key, ...row.other });
      if (row.own) expect({ key, own: await outcome(system, key, row.own(fixture), "alice") }).toEqual({ key, own: OK });
    }
  });

  test("the admin may call every route, on any customer's resources", async () => {
    for (const [key, row] of Object.entries(matrix)) {
      expect({ key, ...(await outcome(system, key, row.request(fixture, "bob"), "admin")) }).toEqual({ key, ...OK });
    }
  });

  test("a read the gateway cached for one principal is not served to another", async () => {
    // The admin's read fills the cache; bob's own read is allowed; alice still gets 404.
    expect((await system.api("GET", `/v1/orders/${fixture.bobOrder}`)).status).toBe(200);
    expect((await system.api("GET", `/v1/orders/${fixture.bobOrder}`, { as: "bob" })).status).toBe(200);
    const second = await system.api("GET", `/v1/orders/${fixture.bobOrder}`, { as: "bob" });
    expect(second.headers.get("x-cache")).toBe("hit");
    const alice = await system.api("GET", `/v1/orders/${fixture.bobOrder}`, { as: "alice" });
    expect({ status: alice.status, reason: reasonOf(alice.body) }).toEqual(HIDDEN_ORDER);
  });

  test("with minVersion, another customer's order is answered exactly as an unknown id: the same wait, then the same 504", async () => {
    const unknown = "ord_01J00000000000000000000000";
    // Long enough that the query service's own answer (a tenth of the budget before it), not the gateway's deadline, ends each wait.
    const timeoutMs = 1500;
    const read = async (id: string, minVersion: string, path = "") => {
      const started = performance.now();
      const response = await system.api("GET", `/v1/orders/${id}${path}?minVersion=${minVersion}`, { as: "alice", headers: { "x-request-timeout": String(timeoutMs) } });
      // The id is the one part of the answer the caller chose; the rest must not tell the two apart.
      return { answer: { status: response.status, body: JSON.parse(response.text.replaceAll(id, "ID")) }, ms: performance.now() - started };
    };
    for (const path of ["", "/timeline"]) {
      // bob's order is at version 2 or more: one read asks for a version it has reached, one for a version it has not.
      for (const minVersion of ["1", "1000"]) {
        const [hidden, missing] = await Promise.all([read(fixture.bobOrder, minVersion, path), read(unknown, minVersion, path)]);
        expect({ path, minVersion, ...hidden.answer }).toEqual({ path, minVersion, ...missing.answer });
        expect(hidden.answer.status).toBe(504);
        expect(hidden.ms).toBeGreaterThan(timeoutMs / 2);
      }
    }
    // Without minVersion both are 404 at once; bob, whose order it is, reads it at any version it has reached.
    expect({ status: (await system.api("GET", `/v1/orders/${fixture.bobOrder}`, { as: "alice" })).status }).toEqual({ status: 404 });
    expect((await system.api("GET", `/v1/orders/${fixture.bobOrder}?minVersion=1`, { as: "bob" })).status).toBe(200);
  });

  test("tokens that are expired, for another audience or issuer, signed by another key, or malformed get 401 INVALID_CREDENTIALS", async () => {
    const devKey = createPrivateKey(readFileSync(join(system.dataDir, "secrets", "jwt-private.pem"), "utf8"));
    const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, key = devKey, edit: (jwt: SignJWT) => SignJWT = (jwt) => jwt) =>
      edit(new SignJWT({ sub: "admin", roles: ["admin"], ...claims }).setProtectedHeader({ alg: "ES256" }).setIssuer(DEV_ISSUER).setAudience(DEV_AUDIENCE).setExpirationTime(now + 600)).sign(key);
    const bad: Record<string, string> = {
      expired: await sign({}, devKey, (jwt) => jwt.setExpirationTime(now - 120)),
      otherAudience: await sign({}, devKey, (jwt) => jwt.setAudience("someone-else")),
      otherIssuer: await sign({}, devKey, (jwt) => jwt.setIssuer("https://evil.example")),
      otherKey: await sign({}, otherKey),
      serviceRoleClaimed: await sign({ roles: ["service"] }),
      customerWithoutCustomerId: await sign({ roles: ["customer"] }),
      subjectNotAString: await sign({ sub: { id: 1 } }),
      emptySubject: await sign({ sub: "" }),
      // Longer than the principal the services are sent can carry (a service refused the call instead).
      longSubject: await sign({ sub: "s".repeat(3000) }),
      longCustomerId: await sign({ roles: ["customer"], customer_id: "c".repeat(3000) }),
      garbage: "not.a.jwt",
    };
    for (const [name, token] of Object.entries(bad)) {
      const response = await system.api("GET", "/v1/inventory", { as: { token } });
      expect({ name, status: response.status, reason: reasonOf(response.body) }).toEqual({ name, status: 401, reason: "INVALID_CREDENTIALS" });
      // Refused by the gateway itself, which names the token (a service would say "the principal on this call is not valid").
      expect({ name, message: response.body.message }).toEqual({ name, message: expect.stringMatching(/bearer token|Authorization/) });
      expect(response.headers.get("www-authenticate")).toContain('error="invalid_token"');
    }
    const basic = await system.api("GET", "/v1/inventory", { as: null, headers: { authorization: "Basic YWRtaW46YWRtaW4=" } });
    expect({ status: basic.status, reason: reasonOf(basic.body) }).toEqual({ status: 401, reason: "INVALID_CREDENTIALS" });
    // A fresh, well-formed token works (the dev key pair is what the gateway trusts).
    const fresh = await mintDevToken(system.dataDir, { sub: "customer:carol", roles: ["customer"], customer_id: "carol" });
    expect((await system.api("GET", "/v1/customers/carol/orders", { as: { token: fresh } })).status).toBe(200);
  });

  describe("the services authorize on their own (called over gRPC, past the gateway)", () => {
    const connections: Connection[] = [];
    afterAll(() => {
      for (const c of connections) c.close();
    });
    const clientOf = <S extends typeof OrderService | typeof InventoryService>(service: S, port: number) => {
      const connection = connect(`127.0.0.1:${port}`);
      connections.push(connection);
      return createClient(service, connection);
    };
    const failure = async (call: Promise<unknown>) => {
      const error = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(OrderlyError);
      const err = error as OrderlyError;
      return { code: Code[err.code], reason: err.reason };
    };
    const bearer = (token: string) => ({ metadata: { authorization: `Bearer ${token}` }, deadline: Date.now() + 5000 });

    test("no credentials: UNAUTHENTICATED; a customer's token: its own orders only; ReserveStock is for services", async () => {
      const orders = clientOf(OrderService, system.order.port);
      const inventory = clientOf(InventoryService, system.inventory.port);
      const alice = bearer(system.tokens.customers.alice!);
      expect(await failure(orders.getOrder({ id: fixture.bobOrder }, { deadline: Date.now() + 5000 }))).toEqual({ code: "UNAUTHENTICATED", reason: "AUTHENTICATION_REQUIRED" });
      expect(await failure(orders.getOrder({ id: fixture.bobOrder }, alice))).toEqual({ code: "NOT_FOUND", reason: "ORDER_NOT_FOUND" });
      expect((await orders.getOrder({ id: fixture.aliceOrder }, alice)).order?.customerId).toBe("alice");
      expect(await failure(orders.listOrders({ customerId: "bob" }, alice))).toEqual({ code: "PERMISSION_DENIED", reason: "NOT_YOUR_CUSTOMER" });
      expect(await failure(orders.cancelOrder({ id: fixture.bobOrder }, alice))).toEqual({ code: "NOT_FOUND", reason: "ORDER_NOT_FOUND" });
      expect(await failure(inventory.reserveStock({ orderId: "ord_x", lines: [{ sku: fixture.sku, quantity: 1 }] }, alice))).toEqual({
        code: "PERMISSION_DENIED",
        reason: "ROLE_NOT_ALLOWED",
      });
      // An admin may call the reservation RPCs (releasing an order never reserved is a no-op)...
      const admin = bearer(system.tokens.admin);
      expect((await inventory.releaseStock({ orderId: "ord_never_reserved" }, admin)).reservation?.orderId).toBe("ord_never_reserved");
      // ...but not release a confirmed order's stock, which would then be sold twice; nor name an order no order id can be.
      const confirmed = await system.api("POST", "/v1/orders", { as: "alice", body: { customerId: "alice", items: [{ sku: fixture.sku, quantity: 1 }] } });
      expect(confirmed.body.status).toBe("ORDER_STATUS_CONFIRMED");
      const before = await inventory.getItem({ sku: fixture.sku }, admin);
      expect(await failure(inventory.releaseStock({ orderId: confirmed.body.id }, admin))).toEqual({ code: "FAILED_PRECONDITION", reason: "ORDER_NOT_ENDED" });
      expect((await inventory.getItem({ sku: fixture.sku }, admin)).item).toEqual(before.item);
      expect(await failure(inventory.reserveStock({ orderId: "ordé-1", lines: [{ sku: fixture.sku, quantity: 1 }] }, admin))).toEqual({
        code: "INVALID_ARGUMENT",
        reason: "VALIDATION_FAILED",
      });
    });

    test("a principal signed with the link key is trusted; one signed with another key is not", async () => {
      const orders = clientOf(OrderService, system.order.port);
      const linkKey = Buffer.from(readFileSync(join(system.dataDir, "secrets", "link.key"), "utf8").trim());
      const aliceByGateway = new LinkTokens(linkKey).sign({ subject: "customer:alice", customerId: "alice", roles: ["customer"] });
      const linked = (token: string) => ({ metadata: { [PRINCIPAL_METADATA_KEY]: token }, deadline: Date.now() + 5000 });
      expect((await orders.getOrder({ id: fixture.aliceOrder }, linked(aliceByGateway))).order?.id).toBe(fixture.aliceOrder);
      expect(await failure(orders.getOrder({ id: fixture.bobOrder }, linked(aliceByGateway)))).toEqual({ code: "NOT_FOUND", reason: "ORDER_NOT_FOUND" });
      const forgedAdmin = new LinkTokens(Buffer.alloc(32, 7)).sign({ subject: "admin", customerId: undefined, roles: ["admin"] });
      expect(await failure(orders.getOrder({ id: fixture.bobOrder }, linked(forgedAdmin)))).toEqual({ code: "UNAUTHENTICATED", reason: "INVALID_CREDENTIALS" });
      const tampered = aliceByGateway.replace(/^[^.]+/, Buffer.from(JSON.stringify({ sub: "admin", roles: ["admin"], exp: Date.now() + 60_000 })).toString("base64url"));
      expect(await failure(orders.getOrder({ id: fixture.bobOrder }, linked(tampered)))).toEqual({ code: "UNAUTHENTICATED", reason: "INVALID_CREDENTIALS" });
    });
  });
});
