import Ajv2020 from "ajv/dist/2020.js";
import { expect, test } from "vitest";
import { waitFor } from "../helpers/processes.js";
import { reasonOf, startSystem, type ApiResponse } from "../helpers/system.js";

/** The response headers the gateway may send that a client reads: each one it sends must be described where it is sent. */
const DESCRIBED_HEADERS = ["x-request-id", "x-cache", "traceresponse", "retry-after", "allow", "www-authenticate"];

/** One response object of the document, its headers resolved. */
interface DocumentedResponse {
  description: string;
  /** The reasons of an error status (an extension of ours). */
  "x-orderly-reasons"?: string[];
  headers?: Record<string, { $ref: string }>;
  content: { "application/json": { schema: unknown } };
}

/** ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses it) with the document, and the validator of the schema at a path in it. */
function documentSchemas(document: any) {
  const ajv = new Ajv2020.default({ strict: false, allErrors: true, formats: { "date-time": true, int32: true, uint32: true, int64: true, uint64: true } });
  ajv.addSchema(document, "openapi");
  const pointer = (...parts: string[]) => parts.map((p) => p.replaceAll("~", "~0").replaceAll("/", "~1")).join("/");
  return { ajv, schemaAt: (...parts: string[]) => ajv.getSchema(`openapi#/${pointer(...parts)}`)! };
}

/**
 * Checks real responses against the document the gateway serves: the status
 * is listed for the operation, the body meets its schema (ajv, JSON Schema
 * 2020-12 as OpenAPI 3.1 uses it), every header the gateway sent is described
 * there and meets its schema, every required one was sent, and an error's
 * reason is among those named for its status.
 */
function conformanceChecker(document: any) {
  const { ajv, schemaAt } = documentSchemas(document);
  return (method: string, path: string, response: ApiResponse): void => {
    const where = `${method} ${path} → ${response.status}`;
    const documented = document.paths[path]?.[method.toLowerCase()]?.responses?.[String(response.status)] as DocumentedResponse | undefined;
    expect(documented, `${where} is documented`).toBeDefined();
    // An error's reason is one the document names for this status on this path (a 503 of /readyz is its report, not an error).
    if (response.status >= 400 && response.body?.details !== undefined) {
      const named = documented!["x-orderly-reasons"] ?? [];
      expect({ where, reason: reasonOf(response.body), named: named.includes(reasonOf(response.body) ?? "") }).toEqual({ where, reason: reasonOf(response.body), named: true });
    }
    if (method === "HEAD") {
      // No body, and none documented.
      expect({ where, text: response.text, content: documented!.content }).toEqual({ where, text: "", content: undefined });
    } else {
      const validate = schemaAt("paths", path, method.toLowerCase(), "responses", String(response.status), "content", "application/json", "schema");
      expect({ where, valid: validate(response.body), errors: validate.errors ?? null }).toEqual({ where, valid: true, errors: null });
    }
    const described = new Map(
      Object.entries(documented!.headers ?? {}).map(([name, { $ref }]) => [name.toLowerCase(), document.components.headers[$ref.split("/").pop()!]]),
    );
    for (const name of DESCRIBED_HEADERS) {
      const value = response.headers.get(name);
      const header = described.get(name);
      if (value !== null) {
        expect({ where, header: name, described: header !== undefined }).toEqual({ where, header: name, described: true });
        expect({ where, header: name, value, valid: ajv.validate(header.schema, value) }).toEqual({ where, header: name, value, valid: true });
      } else if (header?.required) {
        expect.fail(`${where}: the required header ${name} was not sent`);
      }
    }
  };
}

test("every answer of a running gateway is one /openapi.json describes: its status on that path, its body, and every header it sends", async () => {
  await using system = await startSystem({ GATEWAY_CACHE_TTL_MS: "60000" });
  const served = await system.api("GET", "/openapi.json", { as: null });
  const check = conformanceChecker(served.body);
  check("GET", "/openapi.json", served);

  // The built-ins, open to anyone: liveness, readiness (waited for), and a method they do not take.
  check("GET", "/healthz", await system.api("GET", "/healthz", { as: null }));
  check("GET", "/readyz", await waitFor(async () => {
    const r = await system.api("GET", "/readyz", { as: null });
    return r.status === 200 ? r : undefined;
  }, "a ready gateway"));
  const postHealth = await system.api("POST", "/healthz", { as: null });
  expect([postHealth.status, postHealth.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  check("GET", "/healthz", postHealth);

  // A client's own valid request id comes back; an invalid one is replaced.
  const restock = await system.api("POST", "/v1/inventory/OAS-1:restock", { body: { quantity: 5 }, headers: { "idempotency-key": "oas-restock-1", "x-request-id": "client-id.1" } });
  expect([restock.status, restock.headers.get("x-request-id")]).toEqual([200, "client-id.1"]);
  check("POST", "/v1/inventory/{sku}:restock", restock);
  const replaced = await system.api("GET", "/v1/inventory/OAS-1", { headers: { "x-request-id": "not valid!" } });
  expect(replaced.headers.get("x-request-id")).not.toBe("not valid!");
  check("GET", "/v1/inventory/{sku}", replaced);
  // A 64-bit integer as the document spells it is one the gateway takes; one with a leading zero it refuses, and so does the document.
  const restockBody = documentSchemas(served.body).schemaAt("paths", "/v1/inventory/{sku}:restock", "post", "requestBody", "content", "application/json", "schema");
  for (const [unitPriceMinor, taken] of [["2599", true], ["0", true], ["007", false], ["00", false]] as const) {
    expect({ unitPriceMinor, documented: restockBody({ quantity: 1, unitPriceMinor }) }).toEqual({ unitPriceMinor, documented: taken });
    const answer = await system.api("POST", "/v1/inventory/OAS-1:restock", { body: { quantity: 1, unitPriceMinor } });
    expect({ unitPriceMinor, status: answer.status }).toEqual({ unitPriceMinor, status: taken ? 200 : 400 });
  }
  // The same Idempotency-Key with another body: 422, not 409.
  const reused = await system.api("POST", "/v1/inventory/OAS-1:restock", { body: { quantity: 6 }, headers: { "idempotency-key": "oas-restock-1" } });
  expect(reused.status).toBe(422);
  check("POST", "/v1/inventory/{sku}:restock", reused);

  const created = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "OAS-1", quantity: 1 }] }, as: "alice" });
  expect(created.status).toBe(200);
  check("POST", "/v1/orders", created);
  check("GET", "/v1/orders/{id}", await system.api("GET", `/v1/orders/${created.body.id}?minVersion=${created.body.version}`, { as: "alice" }));
  const hit = await waitFor(async () => {
    const r = await system.api("GET", `/v1/orders/${created.body.id}`, { as: "alice" });
    return r.headers.get("x-cache") === "hit" ? r : undefined;
  }, "a cached order read");
  check("GET", "/v1/orders/{id}", hit);
  // HEAD, on a route and a built-in: the GET's status and headers without its body, as documented.
  const headHit = await system.api("HEAD", `/v1/orders/${created.body.id}`, { as: "alice" });
  expect([headHit.status, headHit.headers.get("x-cache")]).toEqual([200, "hit"]);
  check("HEAD", "/v1/orders/{id}", headHit);
  check("HEAD", "/v1/orders/{id}", await system.api("HEAD", "/v1/orders/no-such-order", { as: "alice" }));
  check("HEAD", "/healthz", await system.api("HEAD", "/healthz", { as: null }));
  check("GET", "/v1/stock", await system.api("GET", "/v1/stock?pageSize=1"));

  // Errors: a malformed header, no credentials, a role refused, an unknown order, a method the path does not take, a body too large for a cancel.
  const badTimeout = await system.api("GET", "/v1/stock/OAS-1", { headers: { "x-request-timeout": "soon" } });
  expect(badTimeout.status).toBe(400);
  check("GET", "/v1/stock/{sku}", badTimeout);
  const anonymous = await system.api("GET", "/v1/stock/OAS-1", { as: null });
  expect([anonymous.status, anonymous.headers.get("www-authenticate")]).toEqual([401, 'Bearer realm="orderly"']);
  check("GET", "/v1/stock/{sku}", anonymous);
  const customerRestock = await system.api("POST", "/v1/inventory/OAS-1:restock", { body: { quantity: 1 }, as: "alice" });
  expect(customerRestock.status).toBe(403);
  check("POST", "/v1/inventory/{sku}:restock", customerRestock);
  const unknown = await system.api("GET", "/v1/orders/no-such-order", { as: "alice" });
  expect(unknown.status).toBe(404);
  check("GET", "/v1/orders/{id}", unknown);
  const wrongMethod = await system.api("DELETE", "/v1/orders");
  expect(wrongMethod.status).toBe(405);
  check("POST", "/v1/orders", wrongMethod);
  // The refusals an RPC declares in its proto: an unknown SKU, too little stock, a rejected order's cancel, a page token not issued.
  const noItem = await system.api("GET", "/v1/inventory/NO-SUCH-SKU");
  expect([noItem.status, reasonOf(noItem.body)]).toEqual([404, "ITEM_NOT_FOUND"]);
  check("GET", "/v1/inventory/{sku}", noItem);
  const short = await system.api("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "OAS-1", quantity: 1000 }] }, as: "alice" });
  expect([short.status, reasonOf(short.body)]).toEqual([400, "INSUFFICIENT_STOCK"]);
  check("POST", "/v1/orders", short);
  const rejectedId = short.body.details.find((d: { reason?: string }) => d.reason !== undefined).metadata.orderId;
  const notCancellable = await system.api("POST", `/v1/orders/${rejectedId}:cancel`, { body: {}, as: "alice" });
  expect([notCancellable.status, reasonOf(notCancellable.body)]).toEqual([400, "ORDER_NOT_CANCELLABLE"]);
  check("POST", "/v1/orders/{id}:cancel", notCancellable);
  const badPage = await system.api("GET", "/v1/stock?pageToken=not-a-token");
  expect([badPage.status, reasonOf(badPage.body)]).toEqual([400, "INVALID_PAGE_TOKEN"]);
  check("GET", "/v1/stock", badPage);
  const tooLarge = await system.api("POST", `/v1/orders/${created.body.id}:cancel`, { rawBody: `{"pad":"${"x".repeat(1024 * 1024)}"}`, headers: { "content-type": "application/json" } });
  expect(tooLarge.status).toBe(413);
  check("POST", "/v1/orders/{id}:cancel", tooLarge);

  // A service down: /readyz says which with 503, and a read that needs it is 503 with Retry-After.
  await system.inventory.stop();
  const unready = await waitFor(async () => {
    const r = await system.api("GET", "/readyz", { as: null });
    return r.status === 503 ? r : undefined;
  }, "an unready gateway");
  expect(unready.headers.get("retry-after")).toMatch(/^\d+$/);
  check("GET", "/readyz", unready);
  const down = await system.api("GET", "/v1/inventory/OAS-1");
  expect([down.status, down.headers.get("retry-after")]).toEqual([503, expect.stringMatching(/^\d+$/)]);
  check("GET", "/v1/inventory/{sku}", down);
});
