import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { scrape } from "../helpers/prometheus.js";
import { reasonOf, startSystem, type System } from "../helpers/system.js";

interface BadInput {
  name: string;
  method: string;
  path: string;
  body?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  status: number;
  reason: string;
}

const order = (items: unknown, extra: Record<string, unknown> = {}) => ({ customerId: "eve", items, ...extra });
const violationsOf = (body: { details: { fieldViolations?: unknown }[] }) => body.details.find((d) => d.fieldViolations)?.fieldViolations;

const cases: BadInput[] = [
  { name: "malformed JSON", method: "POST", path: "/v1/orders", rawBody: '{"customerId": "eve", "items": [', status: 400, reason: "MALFORMED_JSON" },
  { name: "a body that is not UTF-8", method: "POST", path: "/v1/orders", rawBody: Buffer.concat([Buffer.from('{"customerId": "eve'), Buffer.from([0xff, 0xfe]), Buffer.from('", "items": [{"sku": "BOX-1", "quantity": 1}]}')]), status: 400, reason: "MALFORMED_JSON" },
  { name: "a body that starts with a byte order mark", method: "POST", path: "/v1/orders", rawBody: `\uFEFF${JSON.stringify(order([{ sku: "BOX-1", quantity: 1 }]))}`, status: 400, reason: "MALFORMED_JSON" },
  { name: "an unknown field", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1 }], { discount: 50 }), status: 400, reason: "INVALID_FIELD" },
  { name: "an unknown field in a line", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1, colour: "red" }]), status: 400, reason: "INVALID_FIELD" },
  { name: "a string quantity", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: "lots" }]), status: 400, reason: "INVALID_FIELD" },
  { name: "a hexadecimal quantity", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: "0x2" }]), status: 400, reason: "INVALID_FIELD" },
  { name: "a binary page size", method: "GET", path: "/v1/inventory?pageSize=0b11", status: 400, reason: "INVALID_FIELD" },
  { name: "an octal minVersion", method: "GET", path: "/v1/stock/BOX-1?minVersion=0o7", status: 400, reason: "INVALID_FIELD" },
  { name: "a price with a leading zero", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, unitPriceMinor: "0300" }, status: 400, reason: "INVALID_FIELD" },
  { name: "a fractional quantity", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1.5 }]), status: 400, reason: "INVALID_FIELD" },
  { name: "items that are not a list", method: "POST", path: "/v1/orders", body: order({ sku: "BOX-1" }), status: 400, reason: "INVALID_FIELD" },
  { name: "a body that is not an object", method: "POST", path: "/v1/orders", body: [1, 2], status: 400, reason: "INVALID_FIELD" },
  { name: "quantity 0", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 0 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "a negative quantity", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: -3 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "a quantity over the line limit", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1001 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "empty items", method: "POST", path: "/v1/orders", body: order([]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "no body", method: "POST", path: "/v1/orders", status: 400, reason: "VALIDATION_FAILED" },
  { name: "a missing customer id", method: "POST", path: "/v1/orders", body: { items: [{ sku: "BOX-1", quantity: 1 }] }, status: 400, reason: "VALIDATION_FAILED" },
  { name: "a malformed SKU", method: "POST", path: "/v1/orders", body: order([{ sku: "box 1; DROP TABLE orders", quantity: 1 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "a repeated SKU", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1 }, { sku: "BOX-1", quantity: 2 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "an unknown SKU", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1 }, { sku: "GHOST-9", quantity: 1 }]), status: 400, reason: "UNKNOWN_SKU" },
  { name: "a huge body", method: "POST", path: "/v1/orders", rawBody: JSON.stringify(order([{ sku: "BOX-1", quantity: 1 }], { pad: "x".repeat(2 * 1024 * 1024) })), status: 413, reason: "PAYLOAD_TOO_LARGE" },
  { name: "an unknown query parameter", method: "GET", path: "/v1/inventory?limit=5", status: 400, reason: "INVALID_FIELD" },
  { name: "a non-numeric page size", method: "GET", path: "/v1/customers/eve/orders?pageSize=ten", status: 400, reason: "INVALID_FIELD" },
  { name: "a negative page size", method: "GET", path: "/v1/inventory?pageSize=-1", status: 400, reason: "VALIDATION_FAILED" },
  { name: "a forged page token", method: "GET", path: "/v1/customers/eve/orders?pageToken=bm90LWEtdG9rZW4", status: 400, reason: "INVALID_PAGE_TOKEN" },
  { name: "a page token of the right query with an empty cursor", method: "GET", path: `/v1/inventory?pageToken=${Buffer.from('{"q":"items","c":[]}').toString("base64url")}`, status: 400, reason: "INVALID_PAGE_TOKEN" },
  { name: "a day not in the calendar", method: "GET", path: "/v1/sales/daily?startDay=2026-02-30", status: 400, reason: "VALIDATION_FAILED" },
  { name: "month 13", method: "GET", path: "/v1/sales/daily?endDay=2026-13-01", status: 400, reason: "VALIDATION_FAILED" },
  { name: "a range that ends before it starts", method: "GET", path: "/v1/sales/daily?startDay=2026-12-04&endDay=2026-12-03", status: 400, reason: "VALIDATION_FAILED" },
  { name: "a restock of 0 units", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 0 }, status: 400, reason: "VALIDATION_FAILED" },
  { name: "a name with a control character", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, name: "Box\u001b[31m" }, status: 400, reason: "VALIDATION_FAILED" },
  { name: "a name with a bidirectional override", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, name: "Box \u202egnp.exe" }, status: 400, reason: "VALIDATION_FAILED" },
  { name: "a restock with a bad currency", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, currencyCode: "dollars" }, status: 400, reason: "VALIDATION_FAILED" },
  { name: "a restock that sets the SKU in the body too", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { sku: "OTHER-1", quantity: 1 }, status: 400, reason: "INVALID_FIELD" },
  { name: "a restock that sets the same SKU in the body too", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { sku: "BOX-1", quantity: 1 }, status: 400, reason: "INVALID_FIELD" },
  { name: "a page size set by both its names, to the same value", method: "GET", path: "/v1/inventory?pageSize=2&page_size=2", status: 400, reason: "INVALID_FIELD" },
  { name: "a customer set by the path and the query", method: "GET", path: "/v1/customers/eve/orders?customerId=eve", status: 400, reason: "INVALID_FIELD" },
  { name: "a fractional price as a string", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, unitPriceMinor: "2.5e0" }, status: 400, reason: "INVALID_FIELD" },
  { name: "a price beyond any integer, in exponent form", method: "POST", path: "/v1/inventory/BOX-1:restock", body: { quantity: 1, unitPriceMinor: "1e400" }, status: 400, reason: "INVALID_FIELD" },
  { name: "an order id that is not valid percent-encoded UTF-8", method: "GET", path: "/v1/orders/%E0%A4%A", status: 400, reason: "INVALID_FIELD" },
  { name: "a cancel of an order id that is a lone %", method: "POST", path: "/v1/orders/%25%:cancel", status: 400, reason: "INVALID_FIELD" },
  // A query is read as strictly as a path (URLSearchParams would read such a byte as U+FFFD, a token that is no token).
  { name: "a page token that is not valid percent-encoded UTF-8", method: "GET", path: "/v1/inventory?pageToken=%FF%FE", status: 400, reason: "INVALID_FIELD" },
  { name: "a day that is not valid percent-encoded UTF-8", method: "GET", path: "/v1/sales/daily?startDay=2026-12-0%E0", status: 400, reason: "INVALID_FIELD" },
  { name: "a gzip-encoded body", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1 }]), headers: { "content-encoding": "gzip" }, status: 415, reason: "UNSUPPORTED_CONTENT_ENCODING" },
  { name: "a malformed X-Request-Timeout", method: "GET", path: "/v1/inventory", headers: { "x-request-timeout": "soon" }, status: 400, reason: "INVALID_HEADER" },
  { name: "an over-long Idempotency-Key", method: "POST", path: "/v1/orders", body: order([{ sku: "BOX-1", quantity: 1 }]), headers: { "idempotency-key": "k".repeat(200) }, status: 400, reason: "INVALID_HEADER" },
  // A URL client removes a path segment "." or ".." (fetch even when sent as %2e%2e): such a SKU or customer could be made but never read.
  { name: 'a restock of the SKU ".."', method: "POST", path: "/v1/inventory/..:restock", body: { quantity: 1 }, status: 400, reason: "VALIDATION_FAILED" },
  { name: 'a restock of the SKU "."', method: "POST", path: "/v1/inventory/.:restock", body: { quantity: 1 }, status: 400, reason: "VALIDATION_FAILED" },
  { name: 'an order for the customer ".."', method: "POST", path: "/v1/orders", body: { customerId: "..", items: [{ sku: "BOX-1", quantity: 1 }] }, status: 400, reason: "VALIDATION_FAILED" },
  { name: 'an order line of the SKU "."', method: "POST", path: "/v1/orders", body: order([{ sku: ".", quantity: 1 }]), status: 400, reason: "VALIDATION_FAILED" },
  { name: "an unknown route", method: "GET", path: "/v2/orders", status: 404, reason: "ROUTE_NOT_FOUND" },
  { name: "a wrong method", method: "DELETE", path: "/v1/inventory/BOX-1", status: 405, reason: "METHOD_NOT_ALLOWED" },
];

describe("bad input gets a 4xx with a reason and changes nothing", () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem();
    await system.api("POST", "/v1/inventory/BOX-1:restock", { body: { quantity: 7, unitPriceMinor: "300" } });
    const placed = await system.api("POST", "/v1/orders", { body: order([{ sku: "BOX-1", quantity: 2 }]) });
    await system.api("GET", `/v1/orders/${placed.body.id}?minVersion=${placed.body.version}`);
  });
  afterAll(async () => {
    await system?.[Symbol.asyncDispose]();
  });

  async function snapshot() {
    const inventory = await system.api("GET", "/v1/inventory");
    const orders = await system.api("GET", "/v1/customers/eve/orders");
    return { inventory: inventory.body, orders: orders.body };
  }

  test.each(cases)("$name → $status $reason", async (c) => {
    const before = await snapshot();
    const r = await system.api(c.method, c.path, { body: c.body, rawBody: c.rawBody, headers: c.headers });
    expect(r.status).toBe(c.status);
    expect(reasonOf(r.body)).toBe(c.reason);
    expect(typeof r.body.message).toBe("string");
    expect(r.body.code).toBeGreaterThan(0);
    expect(r.text).not.toMatch(/\bat .*\.(ts|js):\d+|node_modules|Error:/);
    expect(await snapshot()).toEqual(before);
  });

  test("a body refused for its Content-Encoding (415) is answered with the one accepted: Accept-Encoding: identity", async () => {
    const refused = await system.api("POST", "/v1/orders", { body: order([{ sku: "BOX-1", quantity: 1 }]), headers: { "content-encoding": "gzip" } });
    expect({ status: refused.status, accepted: refused.headers.get("accept-encoding") }).toEqual({ status: 415, accepted: "identity" });
  });

  test("HEAD is answered as GET without the body, on API routes and built-ins; a method a path does not take is 405 listing the ones it does", async () => {
    for (const path of ["/v1/inventory/BOX-1", "/v1/inventory?pageSize=1", "/openapi.json", "/healthz"]) {
      const get = await system.api("GET", path);
      const head = await system.api("HEAD", path);
      expect({ path, status: head.status, text: head.text, type: head.headers.get("content-type") }).toEqual({ path, status: get.status, text: "", type: get.headers.get("content-type") });
      expect(get.status).toBe(200);
    }
    const unknown = await system.api("HEAD", "/v1/inventory/GHOST-9");
    expect({ status: unknown.status, text: unknown.text }).toEqual({ status: 404, text: "" });
    const put = await system.api("PUT", "/v1/inventory/BOX-1");
    expect({ status: put.status, allow: put.headers.get("allow") }).toEqual({ status: 405, allow: "GET, HEAD" });
    expect((await system.api("HEAD", "/v1/orders")).headers.get("allow")).toBe("POST");
    // A built-in takes no credentials, for any method: another method than GET is 405, not 401.
    for (const path of ["/healthz", "/openapi.json"]) {
      const post = await system.api("POST", path, { as: null });
      expect({ path, status: post.status, allow: post.headers.get("allow"), reason: reasonOf(post.body) }).toEqual({ path, status: 405, allow: "GET, HEAD", reason: "METHOD_NOT_ALLOWED" });
    }
  });

  test("an Idempotency-Key on a route that takes none (a read, a cancel) is ignored, malformed or not; on create and restock a malformed one is 400", async () => {
    const malformed = { "idempotency-key": "a b" };
    const read = await system.api("GET", "/v1/inventory/BOX-1", { headers: malformed });
    const list = await system.api("GET", "/v1/inventory?pageSize=1", { headers: malformed });
    const restock = await system.api("POST", "/v1/inventory/BOX-1:restock", { body: { quantity: 1 }, headers: malformed });
    expect([read.status, list.status, restock.status, reasonOf(restock.body)]).toEqual([200, 200, 400, "INVALID_HEADER"]);
  });

  test("integers may be sent as JSON numbers or as decimal strings", async () => {
    const asString = await system.api("POST", "/v1/inventory/BOX-1:restock", { body: { quantity: "2", unitPriceMinor: "300" } });
    const asNumber = await system.api("POST", "/v1/inventory/BOX-1:restock", { body: { quantity: 2, unitPriceMinor: 300 } });
    expect([asString.status, asNumber.status, asNumber.body.available - asString.body.available]).toEqual([200, 200, 2]);
    expect((await system.api("GET", "/v1/inventory?pageSize=1")).body.items).toHaveLength(1);
    // proto3 JSON accepts exponent and fraction forms of an integer, quoted or not, 64-bit fields included.
    const forms = [{ unitPriceMinor: "3e2" }, { unitPriceMinor: "300.0" }, { unitPriceMinor: "0.03e4", quantity: "1e0" }, { unitPriceMinor: 3e2 }];
    for (const form of forms) {
      const r = await system.api("POST", "/v1/inventory/BOX-1:restock", { body: { quantity: 1, ...form } });
      expect({ form, status: r.status, price: r.body.unitPriceMinor }).toEqual({ form, status: 200, price: "300" });
    }
    const placed = await system.api("POST", "/v1/orders", { body: order([{ sku: "BOX-1", quantity: 1 }]) });
    const read = await system.api("GET", `/v1/orders/${placed.body.id}?minVersion=${placed.body.version}e0`);
    expect([read.status, read.body.id]).toEqual([200, placed.body.id]);
  });

  test("a JSON number that would not be read as written is refused, not stored changed: a fraction that rounds to a whole number, a 64-bit value past 2^53", async () => {
    const restock = (raw: string) => system.api("POST", "/v1/inventory/EXACT-1:restock", { rawBody: raw, headers: { "content-type": "application/json" } });
    expect((await restock('{"quantity":2.0,"unitPriceMinor":"2500"}')).body).toMatchObject({ available: 2, unitPriceMinor: "2500" });
    // Named by the field it was given for (JSON.parse has made it another number, so it is found where it stood in the text).
    const notAsWritten = "would not be read as written (a JSON number keeps 53 bits): send a whole number, a 64-bit one as a string";
    for (const [raw, field, written] of [
      ['{"quantity":0.99999999999999999}', "quantity", "0.99999999999999999"],
      ['{"quantity":2.0000000000000001}', "quantity", "2.0000000000000001"],
      ['{"currencyCode":"a,\\"{[","quantity":1,"unitPriceMinor":1e-400}', "unit_price_minor", "1e-400"],
      ['{"quantity":1,"unit_price_minor":9007199254740993}', "unit_price_minor", "9007199254740993"],
      ['{"quantity":1,"unitPriceMinor":-9007199254740993}', "unit_price_minor", "-9007199254740993"],
    ]) {
      const refused = await restock(raw!);
      expect({ raw, status: refused.status, reason: reasonOf(refused.body), violations: violationsOf(refused.body) }).toEqual({
        raw,
        status: 400,
        reason: "INVALID_FIELD",
        violations: [{ field, description: `${written} ${notAsWritten}` }],
      });
    }
    // Inside an order's line, by its whole path.
    const line = await system.api("POST", "/v1/orders", {
      rawBody: '{"customerId":"eve","items":[{"sku":"BOX-1","quantity":1},{"sku":"BOX-2","quantity":1.00000000000000001}]}',
      headers: { "content-type": "application/json" },
    });
    expect(violationsOf(line.body)).toEqual([{ field: "order.items[1].quantity", description: `1.00000000000000001 ${notAsWritten}` }]);
    // Where an object is wanted, it is no object (not one whose keys are looked at).
    const json = { "content-type": "application/json" };
    const notALine = await system.api("POST", "/v1/orders", { rawBody: '{"customerId":"eve","items":[1.00000000000000001]}', headers: json });
    expect(violationsOf(notALine.body)).toEqual([{ field: "order.items[0]", description: "must be an object, not 1.00000000000000001" }]);
    // After an empty object in a list, a string is a list's item, not a key.
    const afterEmpty = await system.api("POST", "/v1/orders", { rawBody: '{"customerId":"eve","items":[{}, "0", 9007199254740993]}', headers: json });
    expect(violationsOf(afterEmpty.body)).toEqual([{ field: "order.items[1]", description: 'must be an object, not "0"' }]);
    // Quoted inside a value as written, not as a string.
    const inList = await restock('{"quantity":1,"name":[9007199254740993]}');
    expect(violationsOf(inList.body)).toEqual([{ field: "name", description: "must be a string, not [9007199254740993]" }]);
    const bare = await system.api("POST", "/v1/orders", { rawBody: "1.00000000000000001", headers: json });
    expect({ status: bare.status, message: bare.body.message }).toEqual({ status: 400, message: "the request body must be a JSON object" });
    // A key given twice, the number inside the one JSON.parse drops: no field holds it, and the number alone is named.
    const twice = await restock('{"quantity":{"n":1.00000000000000001},"quantity":1}');
    expect({ status: twice.status, reason: reasonOf(twice.body), message: twice.body.message }).toEqual({
      status: 400,
      reason: "INVALID_FIELD",
      message: `the number 1.00000000000000001 ${notAsWritten}`,
    });
    // Broken JSON is MALFORMED_JSON, whatever numbers it holds.
    expect(reasonOf((await restock('{"quantity":0.99999999999999999,}')).body)).toBe("MALFORMED_JSON");
    // A number past a double's range is refused for what it is, not quoted as the null JavaScript writes for it.
    const huge = await restock('{"quantity":1e309}');
    expect(huge.body.details?.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations).toEqual([
      { field: "quantity", description: "must be a 32-bit integer, not a number beyond any range" },
    ]);
    // Nothing changed; a whole number JSON carries exactly is read as written, past 15 digits too.
    expect((await restock('{"quantity":1e0,"unitPriceMinor":90000000000.0}')).body).toMatchObject({ available: 3, unitPriceMinor: "90000000000" });
  });

  test("an order of thousands of lines is refused at the gateway for its length, as the rules say, without the order service reading any of it", async () => {
    const createOrderCalls = async () =>
      (await scrape(`http://127.0.0.1:${system.order.adminPort}/metrics`))
        .filter((s) => s.name === "orderly_rpc_server_requests_total" && s.labels.method === "orderly.order.v1.OrderService/CreateOrder")
        .reduce((sum, s) => sum + s.value, 0);
    const before = await createOrderCalls();
    const lines = Array.from({ length: 20_000 }, (_, i) => ({ sku: `BOX-${i}`, quantity: 1 }));
    const refused = await system.api("POST", "/v1/orders", { body: order(lines) });
    expect({ status: refused.status, reason: reasonOf(refused.body), violations: refused.body.details?.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations }).toEqual({
      status: 400,
      reason: "VALIDATION_FAILED",
      violations: [{ field: "order.items", description: "must contain no more than 100 item(s)" }],
    });
    expect(await createOrderCalls()).toBe(before);
  });

  test("a value of the wrong type names its field in a BadRequest violation, in a client's words", async () => {
    const cases: [Record<string, unknown>, { field: string; description: string }][] = [
      [{ quantity: 1, unitPriceMinor: 2599.5 }, { field: "unit_price_minor", description: "must be a 64-bit integer, not 2599.5" }],
      [{ quantity: 1, unitPriceMinor: "1e400" }, { field: "unit_price_minor", description: 'must be a 64-bit integer: "1e400" is out of range' }],
      [{ quantity: 1e12 }, { field: "quantity", description: "must be a 32-bit integer: 1000000000000 is out of range" }],
      [{ quantity: 1, name: 5 }, { field: "name", description: "must be a string, not 5" }],
      [{ quantity: true }, { field: "quantity", description: "must be a 32-bit integer, not true" }],
      [{ quantity: 1, name: "Box \ud800" }, { field: "name", description: "must be Unicode text: it holds half of a surrogate pair alone" }],
      [{ quantity: 1, colour: "red" }, { field: "colour", description: "is not a field of the request" }],
      [{ quantity: 1, unitPriceMinor: "1", unit_price_minor: "1" }, { field: "unit_price_minor", description: "is set twice (by its JSON and its proto name)" }],
    ];
    for (const [body, violation] of cases) {
      const r = await system.api("POST", "/v1/inventory/BOX-1:restock", { body });
      expect({ body, status: r.status, reason: reasonOf(r.body), violations: violationsOf(r.body), message: r.body.message }).toEqual({
        body,
        status: 400,
        reason: "INVALID_FIELD",
        violations: [violation],
        message: `invalid request: ${violation.field}: ${violation.description}`,
      });
    }
  });

  test("a restock that changes an item's currency without its price is refused, and the item keeps its price and currency", async () => {
    await system.api("POST", "/v1/inventory/PRICED-1:restock", { body: { quantity: 5, unitPriceMinor: "1250", currencyCode: "USD" } });
    const before = (await system.api("GET", "/v1/inventory/PRICED-1")).body;
    const r = await system.api("POST", "/v1/inventory/PRICED-1:restock", { body: { quantity: 1, currencyCode: "EUR" } });
    expect({ status: r.status, reason: reasonOf(r.body), violations: r.body.details.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations }).toEqual({
      status: 400,
      reason: "VALIDATION_FAILED",
      violations: [{ field: "unit_price_minor", description: "must be given with a currency_code that changes the item's (USD to EUR)" }],
    });
    expect((await system.api("GET", "/v1/inventory/PRICED-1")).body).toEqual(before);
    // With its price, or in the currency it has, it goes through.
    expect((await system.api("POST", "/v1/inventory/PRICED-1:restock", { body: { quantity: 1, currencyCode: "USD" } })).status).toBe(200);
    const repriced = await system.api("POST", "/v1/inventory/PRICED-1:restock", { body: { quantity: 1, unitPriceMinor: "1100", currencyCode: "EUR" } });
    expect(repriced.body).toMatchObject({ unitPriceMinor: "1100", currencyCode: "EUR", available: 7 });
    // An item without a price yet (0) takes a currency alone: 0 is 0 in any.
    await system.api("POST", "/v1/inventory/UNPRICED-1:restock", { body: { quantity: 1 } });
    const unpriced = await system.api("POST", "/v1/inventory/UNPRICED-1:restock", { body: { quantity: 1, currencyCode: "EUR" } });
    expect(unpriced.body).toMatchObject({ unitPriceMinor: "0", currencyCode: "EUR", available: 2 });
  });

  test("a wrong value inside an order's line is named by its whole path, as the rules' own violations are", async () => {
    for (const [item, violation] of [
      [{ sku: "BOX-1", quantity: true }, { field: "order.items[0].quantity", description: "must be a 32-bit integer, not true" }],
      [{ sku: "BOX-1", quantity: 1, colour: "red" }, { field: "order.items[0].colour", description: "is not a field of the request" }],
    ] as const) {
      const r = await system.api("POST", "/v1/orders", { body: order([item]) });
      expect({ status: r.status, violations: r.body.details.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations }).toEqual({ status: 400, violations: [violation] });
    }
  });

  test("a query parameter given twice, or one on a route that takes none, is named in a BadRequest violation", async () => {
    const repeated = await system.api("GET", "/v1/inventory?pageSize=2&pageSize=3");
    const unexpected = await system.api("POST", "/v1/orders/ord_x:cancel?id=ord_x&why=1");
    expect([repeated, unexpected].map((r) => ({ status: r.status, reason: reasonOf(r.body), violations: violationsOf(r.body) }))).toEqual([
      { status: 400, reason: "INVALID_FIELD", violations: [{ field: "page_size", description: "given more than once in the query" }] },
      {
        status: 400,
        reason: "INVALID_FIELD",
        violations: [{ field: "id", description: "not a query parameter of this route (it takes none)" }],
      },
    ]);
  });

  test("an order's enum or time of the wrong form (output-only, but read) is named by its path, and nothing is recorded", async () => {
    await system.api("POST", "/v1/inventory/TIMED-1:restock", { body: { quantity: 10 } });
    const line = { sku: "TIMED-1", quantity: 1 };
    const before = await system.api("GET", "/v1/inventory/TIMED-1");
    const timestamp = "must be a google.protobuf.Timestamp in its proto3 JSON form (an RFC 3339 time)";
    for (const [extra, violation] of [
      [{ status: "BOGUS" }, { field: "order.status", description: 'must be one of ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PENDING, ORDER_STATUS_CONFIRMED, ORDER_STATUS_REJECTED, ORDER_STATUS_CANCELLED (OrderStatus) or its number, not "BOGUS"' }],
      [{ status: "order_status_confirmed" }, { field: "order.status", description: 'must be one of ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PENDING, ORDER_STATUS_CONFIRMED, ORDER_STATUS_REJECTED, ORDER_STATUS_CANCELLED (OrderStatus) or its number, not "order_status_confirmed"' }],
      [{ status: 2 ** 31 }, { field: "order.status", description: "must be one of ORDER_STATUS_UNSPECIFIED, ORDER_STATUS_PENDING, ORDER_STATUS_CONFIRMED, ORDER_STATUS_REJECTED, ORDER_STATUS_CANCELLED (OrderStatus) or its number, not 2147483648" }],
      [{ createTime: 1577836800 }, { field: "order.create_time", description: `${timestamp}, not 1577836800` }],
      [{ update_time: "yesterday" }, { field: "order.update_time", description: `${timestamp}, not "yesterday"` }],
      [{ createTime: "0000-01-01T00:00:00Z" }, { field: "order.create_time", description: `${timestamp}, not "0000-01-01T00:00:00Z"` }],
    ] as const) {
      const r = await system.api("POST", "/v1/orders", { body: { ...order([line]), ...extra } });
      expect({ extra, status: r.status, reason: reasonOf(r.body), violations: r.body.details.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations }).toEqual({
        extra,
        status: 400,
        reason: "INVALID_FIELD",
        violations: [violation],
      });
    }
    expect((await system.api("GET", "/v1/inventory/TIMED-1")).body).toEqual(before.body);
    // Well-formed, they are accepted and ignored (the server sets them): an enum by number too, a time with an offset and nine digits.
    for (const extra of [{ status: "ORDER_STATUS_CONFIRMED" }, { status: 4 }, { createTime: "2020-01-01T00:00:00.123456789+05:30" }]) {
      const r = await system.api("POST", "/v1/orders", { body: { ...order([line]), ...extra } });
      expect({ extra, status: r.status }).toEqual({ extra, status: 200 });
      expect(r.body.status).toBe("ORDER_STATUS_CONFIRMED");
      expect(r.body.createTime).not.toBe("2020-01-01T00:00:00.123456789+05:30");
    }
  });

  test('a SKU or customer id with dots that is not "." or ".." is one like any other, read back by its URL', async () => {
    for (const sku of ["...", ".a", "a.", "a..b"]) {
      expect([sku, (await system.api("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 1 } })).status]).toEqual([sku, 200]);
      expect([sku, (await system.api("GET", `/v1/inventory/${sku}`)).body.sku]).toEqual([sku, sku]);
    }
    expect((await system.api("GET", "/v1/customers/.../orders")).status).toBe(200);
  });

  test("a field set twice says by what: the path and the query of a GET name no body", async () => {
    const r = await system.api("GET", "/v1/customers/eve/orders?customer_id=eve");
    expect([r.status, r.body.message]).toEqual([400, '"customer_id" is set by both the path and the query']);
  });

  test("a name may hold any other character: accents, symbols, emoji joined with U+200D", async () => {
    const name = "Café ☕ 👩‍🍳 «Ünïcødé» 箱";
    const r = await system.api("POST", "/v1/inventory/NAMED-1:restock", { body: { quantity: 1, name } });
    expect({ status: r.status, name: r.body.name }).toEqual({ status: 200, name });
  });

  test("field violations name the offending fields", async () => {
    const r = await system.api("POST", "/v1/orders", {
      body: { customerId: "", items: [{ sku: "BOX-1", quantity: 0 }] },
    });
    const badRequest = r.body.details.find((d: { "@type": string }) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
    expect(badRequest.fieldViolations.map((v: { field: string }) => v.field)).toEqual(["order.customer_id", "order.items[0].quantity"]);
    // A rule over the lines together names the lines.
    const repeated = await system.api("POST", "/v1/orders", { body: order([{ sku: "BOX-1", quantity: 1 }, { sku: "BOX-1", quantity: 2 }]) });
    expect(repeated.body.details.find((d: { fieldViolations?: unknown }) => d.fieldViolations)?.fieldViolations).toEqual([
      { field: "order.items", description: "must not repeat the SKU of another line" },
    ]);
  });

  test("a page size over the cap is clamped to 100", async () => {
    for (let i = 0; i < 3; i++) await system.api("POST", `/v1/inventory/CLAMP-${i}:restock`, { body: { quantity: 1 } });
    const r = await system.api("GET", "/v1/inventory?pageSize=100000");
    expect(r.status).toBe(200);
    expect(r.body.items.length).toBeLessThanOrEqual(100);
  });
});
