import fc from "fast-check";
import { expect, test } from "vitest";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { matchPath, parsePathTemplate } from "./path-template.js";
import { indexRoutes, resolveRoute, routesOf, type Route } from "./route-table.js";

/** What resolveRoute answers, found by trying every route in the table's order (what its index must agree with). */
function byScan(routes: readonly Route[], httpMethod: string, path: string) {
  const allowed: string[] = [];
  // A path ending with a verb of the table is for the routes with a verb (the same rule as the index's: the explicit
  // cases below, not this scan, check the rule itself).
  const withVerb = routes.some((route) => route.template.verb !== undefined && path.endsWith(`:${route.template.verb}`));
  for (const route of routes) {
    if (withVerb && route.template.verb === undefined) continue;
    // HEAD is GET without the body.
    const serves = route.httpMethod === (httpMethod === "HEAD" ? "GET" : httpMethod);
    let params: Record<string, string> | undefined;
    try {
      // Another method's route only by its shape: with every "%" encoded, any value decodes.
      params = matchPath(route.template, serves ? path : path.replaceAll("%", "%25"));
    } catch (error) {
      // A path of the shape of the route serving its method, with a value not encoded right.
      return { reason: (error as OrderlyError).reason };
    }
    if (params === undefined) continue;
    if (serves) return { label: route.label, params };
    allowed.push(...(route.httpMethod === "GET" ? ["GET", "HEAD"] : [route.httpMethod]));
  }
  return allowed.length > 0 ? { reason: "METHOD_NOT_ALLOWED", allow: allowed.join(", ") } : { reason: "ROUTE_NOT_FOUND" };
}

function resolved(routes: readonly Route[], httpMethod: string, path: string) {
  try {
    const { route, params } = resolveRoute(indexRoutes(routes), httpMethod, path);
    return { label: route.label, params };
  } catch (error) {
    const { reason, metadata } = error as OrderlyError;
    return reason === "METHOD_NOT_ALLOWED" ? { reason, allow: metadata.allow } : { reason };
  }
}

test("a request finds the route a scan of every route would find, with the same params, or the same refusal", () => {
  const routes = routesOf([OrderService, InventoryService, QueryService]);
  // A table with a second segment that is a variable and one whose verb ends its second segment.
  const like = (httpMethod: string, source: string): Route => ({ ...routes[0]!, httpMethod, template: parsePathTemplate(source), label: `${httpMethod} ${source}` });
  const extra = [like("GET", "/v1/{name}/orders"), ...routes.slice(0, 6), like("POST", "/v1/orders:cancel"), like("GET", "/v1/{name}"), ...routes.slice(6), like("DELETE", "/{version}/orders/{id}")];
  const segment = fc.constantFrom("v1", "orders", "inventory", "customers", "stock", "sales", "daily", "timeline", "ord_1", "SKU-1", "a%2Eb", "%E0%A4%A", "", "ord_1:cancel", "SKU-1:restock", "x:cancel", "orders:cancel");
  const path = fc.array(segment, { minLength: 0, maxLength: 5 }).map((parts) => `/${parts.join("/")}`);
  const method = fc.constantFrom("GET", "HEAD", "POST", "DELETE");
  fc.assert(
    fc.property(method, path, (m, p) => {
      expect(resolved(routes, m, p)).toEqual(byScan(routes, m, p));
      expect(resolved(extra, m, p)).toEqual(byScan(extra, m, p));
    }),
    { numRuns: 3000 },
  );
  // A few that must match, so the property is not only about refusals.
  expect(resolved(routes, "GET", "/v1/orders/ord_1")).toEqual({ label: "GET /v1/orders/{id}", params: { id: "ord_1" } });
  expect(resolved(routes, "POST", "/v1/orders/ord_1:cancel")).toEqual({ label: "POST /v1/orders/{id}:cancel", params: { id: "ord_1" } });
  expect(resolved(routes, "DELETE", "/v1/orders")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "POST" });
  expect(resolved(routes, "GET", "/v2/orders")).toEqual({ reason: "ROUTE_NOT_FOUND" });
  expect(resolved(routes, "GET", "/v1/orders/%E0%A4%A")).toEqual({ reason: "INVALID_FIELD" });
  expect(resolved(routes, "GET", "/v2/orders/%E0%A4%A")).toEqual({ reason: "ROUTE_NOT_FOUND" });
  // A value not encoded right on a path served for other methods only: the method is what is wrong.
  expect(resolved(routes, "DELETE", "/v1/orders/%E0%A4%A")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "GET, HEAD" });
  expect(resolved(routes, "GET", "/v1/orders/%E0%A4%A:cancel")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "POST" });
  expect(resolved(routes, "HEAD", "/v1/orders/ord_1")).toEqual({ label: "GET /v1/orders/{id}", params: { id: "ord_1" } });
  expect(resolved(routes, "POST", "/v1/inventory/SKU-1")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "GET, HEAD" });
  // A verb's path is not a variable of a route without one: GET on a cancel is 405, not a read of the order "ord_1:cancel".
  expect(resolved(routes, "GET", "/v1/orders/ord_1:cancel")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "POST" });
  expect(resolved(routes, "GET", "/v1/inventory/SKU-1:restock")).toEqual({ reason: "METHOD_NOT_ALLOWED", allow: "POST" });
  expect(resolved(routes, "GET", "/v1/inventory/SKU-1:cancel")).toEqual({ reason: "ROUTE_NOT_FOUND" });
  // An unknown verb is part of the segment (an id the service then refuses).
  expect(resolved(routes, "GET", "/v1/orders/ord_1:undo")).toEqual({ label: "GET /v1/orders/{id}", params: { id: "ord_1:undo" } });
  // A mistyped action is refused as before, saying which actions there are.
  const message = (m: string, p: string) => {
    try {
      resolveRoute(indexRoutes(routes), m, p);
      return undefined;
    } catch (error) {
      return (error as OrderlyError).message;
    }
  };
  expect(message("POST", "/v1/orders/ord_1:Cancel")).toBe('POST is not allowed on /v1/orders/ord_1:Cancel (no route has the action ":Cancel"; the actions are :cancel, :restock)');
  expect(message("POST", "/v1/nothing/x:undo")).toBe('no route for POST /v1/nothing/x:undo (no route has the action ":undo"; the actions are :cancel, :restock)');
  expect(message("DELETE", "/v1/orders/ord_1")).toBe("DELETE is not allowed on /v1/orders/ord_1");
  expect(resolved(extra, "POST", "/v1/orders:cancel")).toEqual({ label: "POST /v1/orders:cancel", params: {} });
  expect(resolved(extra, "GET", "/v1/orders/ord_1")).toEqual({ label: "GET /v1/orders/{id}", params: { id: "ord_1" } });
  expect(resolved(extra, "GET", "/v1/stock/orders")).toEqual({ label: "GET /v1/{name}/orders", params: { name: "stock" } });
  expect(resolved(extra, "DELETE", "/v1/orders/ord_1")).toEqual({ label: "DELETE /{version}/orders/{id}", params: { version: "v1", id: "ord_1" } });
});
