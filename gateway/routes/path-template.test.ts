import { describe, expect, test } from "vitest";
import { matchPath, openApiPath, parsePathTemplate } from "./path-template.js";

describe("path templates", () => {
  test("parses literals, variables and a custom verb", () => {
    const t = parsePathTemplate("/v1/inventory/{sku}:restock");
    expect(t.segments).toEqual([{ literal: "v1" }, { literal: "inventory" }, { variable: "sku" }]);
    expect(t.verb).toBe("restock");
    expect(openApiPath(t)).toBe("/v1/inventory/{sku}:restock");
  });

  test("matches and percent-decodes variables", () => {
    const t = parsePathTemplate("/v1/customers/{customer_id}/orders");
    expect(matchPath(t, "/v1/customers/a%2Eb/orders")).toEqual({ customer_id: "a.b" });
    expect(matchPath(t, "/v1/customers//orders")).toBeUndefined();
    expect(matchPath(t, "/v1/customers/a/orders/extra")).toBeUndefined();
  });

  test("a verb route matches only with its verb, and a plain route does not take it", () => {
    const cancel = parsePathTemplate("/v1/orders/{id}:cancel");
    const get = parsePathTemplate("/v1/orders/{id}");
    expect(matchPath(cancel, "/v1/orders/ord_1:cancel")).toEqual({ id: "ord_1" });
    expect(matchPath(cancel, "/v1/orders/ord_1")).toBeUndefined();
    expect(matchPath(get, "/v1/orders/ord_1")).toEqual({ id: "ord_1" });
  });

  test("refuses templates it does not support, at start-up", () => {
    expect(() => parsePathTemplate("/v1/{name=projects/*}")).toThrow(/unsupported/);
    expect(() => parsePathTemplate("v1/x")).toThrow(/must start/);
  });

  test("a malformed percent-encoding in a variable is INVALID_FIELD naming it, not a path that matches no route", () => {
    for (const path of ["/v1/orders/%E0%A4%A", "/v1/orders/%", "/v1/orders/%C0%AE%C0%AE"]) {
      expect(() => matchPath(parsePathTemplate("/v1/orders/{id}"), path)).toThrow("invalid request: id: is not valid percent-encoded UTF-8");
    }
    // A literal segment never holds "%": such a path is another route's, or none.
    expect(matchPath(parsePathTemplate("/v1/orders"), "/v1/%6Frders")).toBeUndefined();
  });
});
