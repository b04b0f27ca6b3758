import { getOption, hasOption, type DescMethodUnary, type DescService } from "@bufbuild/protobuf";
import { http } from "../../proto/gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../proto/gen/google/api/http_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { matchSegments, parsePathTemplate, splitPath, type PathTemplate } from "./path-template.js";
import { shownPath, shownSegment } from "../../shared/observability/index.js";

/** An HTTP route, derived from one google.api.http binding of an RPC. */
export interface Route {
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly service: DescService;
  readonly method: DescMethodUnary;
  /** "" for no body, "*" for every field not in the path, or a top-level field name. */
  readonly body: string;
  /** "" for the whole response, or the response field the HTTP body carries. */
  readonly responseBody: string;
  /** The RPC's full name ("orderly.order.v1.OrderService/CreateOrder"). */
  readonly fullName: string;
  /** "POST /v1/orders": how logs and metrics name the route. */
  readonly label: string;
}

/** A route that matched a request, with its path variables. */
export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

function bindingsOf(rule: HttpRule): { httpMethod: string; path: string; body: string; responseBody: string }[] {
  const own = (() => {
    switch (rule.pattern.case) {
      case "get":
      case "put":
      case "post":
      case "delete":
      case "patch":
        return [{ httpMethod: rule.pattern.case.toUpperCase(), path: rule.pattern.value, body: rule.body, responseBody: rule.responseBody }];
      case "custom":
        return [{ httpMethod: rule.pattern.value.kind.toUpperCase(), path: rule.pattern.value.path, body: rule.body, responseBody: rule.responseBody }];
      default:
        return [];
    }
  })();
  return [...own, ...rule.additionalBindings.flatMap(bindingsOf)];
}

/** Every route of the services' google.api.http annotations; RPCs without one are not exposed. */
export function routesOf(services: readonly DescService[]): Route[] {
  const routes: Route[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary" || !hasOption(method, http)) continue;
      for (const binding of bindingsOf(getOption(method, http))) {
        routes.push({
          httpMethod: binding.httpMethod,
          template: parsePathTemplate(binding.path),
          service,
          method: method as DescMethodUnary,
          body: binding.body,
          responseBody: binding.responseBody,
          fullName: `${service.typeName}/${method.name}`,
          label: `${binding.httpMethod} ${binding.path}`,
        });
      }
    }
  }
  return routes;
}

/**
 * The routes a path can match, by its number of segments and its second
 * segment ("orders" of /v1/orders/{id}): each list keeps the table's order,
 * with the routes whose second segment is a variable (or the verb's segment).
 * A request tries these few instead of every route of the table.
 */
export interface RouteIndex {
  readonly bySegments: ReadonlyMap<number, { byLiteral: ReadonlyMap<string, readonly Route[]>; other: readonly Route[] }>;
  /** The table's verbs, as a path's last segment ends with them (":cancel"). */
  readonly verbSuffixes: ReadonlySet<string>;
}

/** The index of a route table, made once (when the gateway's handler is created) and then only read. */
export function indexRoutes(routes: readonly Route[]): RouteIndex {
  const bySegments = new Map<number, { byLiteral: Map<string, Route[]>; other: Route[] }>();
  /** The literal a route is found by (its second segment), or undefined when any second segment may match it. */
  const literalOf = (route: Route) => {
    const { segments, verb } = route.template;
    const second = segments[1];
    return second !== undefined && "literal" in second && !(verb !== undefined && segments.length === 2) ? second.literal : undefined;
  };
  for (const route of routes) {
    const count = route.template.segments.length;
    let group = bySegments.get(count);
    if (group === undefined) bySegments.set(count, (group = { byLiteral: new Map(), other: [] }));
    const literal = literalOf(route);
    if (literal !== undefined && !group.byLiteral.has(literal)) group.byLiteral.set(literal, []);
  }
  // Each list in the table's order: a route joins the list of its literal, or every list of its count when it has none.
  for (const route of routes) {
    const group = bySegments.get(route.template.segments.length)!;
    const literal = literalOf(route);
    if (literal !== undefined) group.byLiteral.get(literal)!.push(route);
    else {
      group.other.push(route);
      for (const list of group.byLiteral.values()) list.push(route);
    }
  }
  return { bySegments, verbSuffixes: new Set(routes.flatMap((route) => route.template.verbSuffix ?? [])) };
}

/** The method that serves a request's: HEAD is served as GET, as RFC 9110 asks (Node sends the headers without the body). */
export function servingMethod(requestMethod: string): string {
  return requestMethod === "HEAD" ? "GET" : requestMethod;
}

/**
 * Finds the route of a request. ROUTE_NOT_FOUND when no path matches, METHOD_NOT_ALLOWED when only the method differs.
 * HEAD is served by the GET route of its path (servingMethod). A path whose last segment ends with one of the
 * table's verbs (":cancel") is for the routes with that verb, never a variable of a route without one: GET on
 * /v1/orders/{id}:cancel is 405 (Allow: POST), not a read of an order whose id ends with ":cancel".
 */
export function resolveRoute(index: RouteIndex, requestMethod: string, path: string): RouteMatch {
  const httpMethod = servingMethod(requestMethod);
  const parts = splitPath(path);
  const group = index.bySegments.get(parts.length);
  const candidates = group === undefined ? [] : (group.byLiteral.get(parts[1]!) ?? group.other);
  const last = parts[parts.length - 1]!;
  const colon = last.lastIndexOf(":");
  const withVerb = colon >= 0 && index.verbSuffixes.has(last.slice(colon));
  let allowed: string[] | undefined;
  for (const route of candidates) {
    if (withVerb && route.template.verbSuffix === undefined) continue;
    // Only the route that serves the method reads (and checks) the path's variables: a badly encoded one on a path
    // served for other methods only is still 405.
    const serves = route.httpMethod === httpMethod;
    const params = matchSegments(route.template, parts, serves);
    if (params === undefined) continue;
    if (serves) return { route, params };
    (allowed ??= []).push(route.httpMethod);
    if (route.httpMethod === "GET") allowed.push("HEAD");
  }
  // A last segment with an action none of the routes has (":Cancel"): the likely mistake, said beside the refusal.
  // The path as logs show it (shownPath): a client's mistake may have put a token in it.
  const action = colon >= 0 && !withVerb ? ` (no route has the action "${shownSegment(last.slice(colon))}"; the actions are ${[...index.verbSuffixes].join(", ")})` : "";
  // Named as served (HEAD as GET): a HEAD's answer has the headers of its GET's, Content-Length too.
  if (allowed !== undefined) {
    throw new OrderlyError("METHOD_NOT_ALLOWED", `${httpMethod} is not allowed on ${shownPath(path)}${action}`, { metadata: { allow: allowed.join(", ") } });
  }
  throw new OrderlyError("ROUTE_NOT_FOUND", `no route for ${httpMethod} ${shownPath(path)}${action}`);
}
