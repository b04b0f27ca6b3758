import { OrderlyError } from "../../shared/errors/index.js";

/** One segment of a path template: literal text, or a variable bound to a request field. */
export type TemplateSegment = { literal: string } | { variable: string };

/** A parsed google.api.http path template ("/v1/orders/{id}:cancel"). */
export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly verb: string | undefined;
  /** ":" and the verb, as the last segment of a path ends (made once, not per request). */
  readonly verbSuffix: string | undefined;
}

/**
 * Parses a path template of the google.api.http syntax. Orderly supports
 * literal segments, single-segment variables ({field} or {field=*}, field
 * paths with dots) and a trailing ":verb"; anything else is refused at start-up.
 */
export function parsePathTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`path template must start with "/": ${source}`);
  let rest = source.slice(1);
  let verb: string | undefined;
  const colon = rest.indexOf(":", Math.max(rest.lastIndexOf("/"), rest.lastIndexOf("}")) + 1);
  if (colon >= 0) {
    verb = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(verb)) throw new Error(`unsupported verb in path template: ${source}`);
  }
  const segments = rest.split("/").map((part): TemplateSegment => {
    const variable = /^\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)(?:=\*)?\}$/.exec(part);
    if (variable) return { variable: variable[1]! };
    if (/^[A-Za-z0-9._~-]+$/.test(part)) return { literal: part };
    throw new Error(`unsupported path template segment "${part}" in ${source}`);
  });
  return { source, segments, verb, verbSuffix: verb === undefined ? undefined : `:${verb}` };
}

/** The segments of a request path ("/v1/orders/x" → ["v1", "orders", "x"]), split once for every template it is matched against. */
export function splitPath(path: string): string[] {
  return (path.startsWith("/") ? path.slice(1) : path).split("/");
}

/**
 * The path variables (percent-decoded) when the path matches the template,
 * else undefined. A variable must be a non-empty single segment; one that is
 * not valid percent-encoded UTF-8 is INVALID_FIELD.
 */
export function matchPath(template: PathTemplate, path: string): Record<string, string> | undefined {
  return matchSegments(template, splitPath(path));
}

/**
 * matchPath over a path already split by splitPath. Without `decode`, only
 * whether the path has the template's shape: its variables are neither
 * decoded nor checked (the params are empty).
 */
export function matchSegments(template: PathTemplate, parts: readonly string[], decode = true): Record<string, string> | undefined {
  const count = template.segments.length;
  if (parts.length !== count) return undefined;
  let params: Record<string, string> | undefined;
  let badlyEncoded: string | undefined;
  for (let i = 0; i < count; i++) {
    const segment = template.segments[i]!;
    let part = parts[i]!;
    if (i === count - 1 && template.verbSuffix !== undefined) {
      if (!part.endsWith(template.verbSuffix)) return undefined;
      part = part.slice(0, -template.verbSuffix.length);
    }
    if ("literal" in segment) {
      if (segment.literal !== part) return undefined;
      continue;
    }
    if (part === "") return undefined;
    if (!decode) continue;
    let value = part;
    if (part.includes("%")) {
      try {
        value = decodeURIComponent(part);
      } catch {
        badlyEncoded ??= segment.variable;
      }
    }
    (params ??= {})[segment.variable] = value;
  }
  // The path has this route's shape (a literal never holds "%"): the client did not encode a value right.
  if (badlyEncoded !== undefined) {
    const description = "is not valid percent-encoded UTF-8";
    throw new OrderlyError("INVALID_FIELD", `invalid request: ${badlyEncoded}: ${description}`, { violations: [{ field: badlyEncoded, description }] });
  }
  return params ?? {};
}

/** The template in OpenAPI's path form: "/v1/orders/{id}:cancel". */
export function openApiPath(template: PathTemplate): string {
  const path = template.segments.map((s) => ("literal" in s ? s.literal : `{${s.variable}}`)).join("/");
  return `/${path}${template.verb === undefined ? "" : `:${template.verb}`}`;
}
