import { getOption, hasOption, type DescMethodUnary, type DescService } from "@bufbuild/protobuf";
import { http } from "../../proto/gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../proto/gen/google/api/http_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { matchSegments, parsePathTemplate, splitPath, type PathTemplate } from "./path-template.js";

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

/** Finds the route of a request. ROUTE_NOT_FOUND when no path matches, METHOD_NOT_ALLOWED when only the method differs. */
export function resolveRoute(routes: readonly Route[], httpMethod: string, path: string): RouteMatch {
  const allowed: string[] = [];
  const parts = splitPath(path);
  for (const route of routes) {
    const params = matchSegments(route.template, parts);
    if (params === undefined) continue;
    if (route.httpMethod === httpMethod) return { route, params };
    allowed.push(route.httpMethod);
  }
  if (allowed.length > 0) {
    throw new OrderlyError("METHOD_NOT_ALLOWED", `${httpMethod} is not allowed on ${path}`, { metadata: { allow: allowed.join(", ") } });
  }
  throw new OrderlyError("ROUTE_NOT_FOUND", `no route for ${httpMethod} ${path}`);
}
