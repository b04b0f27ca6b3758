import { ScalarType, getOption, hasOption, isFieldSet, type DescEnum, type DescMethod, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { RepeatedRulesSchema, StringRulesSchema, field as fieldRules } from "../proto/gen/buf/validate/validate_pb.js";
import { FieldBehavior, field_behavior } from "../proto/gen/google/api/field_behavior_pb.js";
import { ecmaPattern } from "../shared/grpc/pattern-match.js";
import { StatusSchema } from "../proto/gen/google/rpc/status_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../proto/gen/google/rpc/error_details_pb.js";
import { readFileSync } from "node:fs";
import { STATUS_CODES } from "node:http";
import { OrderService } from "../proto/gen/orderly/order/v1/order_pb.js";
import { HealthCheckResponse_ServingStatus } from "../proto/gen/grpc/health/v1/health_pb.js";
import { httpStatusFor, mayAnswer, reasons, type Code, type Reason } from "../shared/errors/index.js";
import { REQUEST_ID_PATTERN } from "../shared/grpc/index.js";
import { IDEMPOTENCY_KEY_PATTERN } from "./http-server.js";
import { BODY_REASONS } from "./json-body.js";
import { openApiPath, type Route } from "./routes/index.js";
import { fieldByName, takesIdempotencyKey } from "./transcode.js";

const WELL_KNOWN: Record<string, JsonObject> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true },
};

/**
 * The comment above each element of Orderly's protos, by full name
 * (proto/gen/comments.json, written by `npm run generate`): the document
 * describes operations, schemas, fields and enum values in the protos' words.
 */
const COMMENTS: Readonly<Record<string, string>> = JSON.parse(readFileSync(new URL("../proto/gen/comments.json", import.meta.url), "utf8"));

/** `schema` described by the comment of the proto element `name`, before any description it has. */
function described(schema: JsonObject, name: string): JsonObject {
  const comment = COMMENTS[name];
  if (comment === undefined) return schema;
  return { ...schema, description: typeof schema.description === "string" ? `${comment}\n\n${schema.description}` : comment };
}

/** A response header the gateway sends, as a component (#/components/headers/NAME). */
function header(description: string, schema: JsonObject, required = false): JsonObject {
  return { description, required, schema };
}

/** Every response header the gateway sends, by name. */
const HEADERS: Record<string, JsonObject> = {
  "X-Request-Id": header("The request's id: the client's own X-Request-Id when it is valid, else one the gateway made. Every log line of the request carries it.", { type: "string", pattern: REQUEST_ID_PATTERN.source }, true),
  "X-Cache": header("A cached read's answer: hit (from the gateway's cache) or shared (from another request's fetch of the same resource); absent when the service answered this request.", { type: "string", enum: ["hit", "shared"] }),
  Age: header("On a hit (X-Cache: hit): how many seconds ago the gateway's fetch of the answer asked the query service (RFC 9111 §5.1).", { type: "string", pattern: "^\\d+$" }),
  traceresponse: header("The W3C trace context of the request's span (Trace Context level 2), so a client can find its trace; absent on a cache hit and on a refusal written before the request was read.", { type: "string" }),
  "Retry-After": header("Seconds to wait before trying again", { type: "string", pattern: "^\\d+$" }, true),
  Allow: header("The methods the path takes", { type: "string" }, true),
  "WWW-Authenticate": header('Bearer realm="orderly", with error="invalid_token" when the credentials were refused', { type: "string" }, true),
  "Accept-Encoding": header("The content codings a request body may have: identity (none) only", { type: "string", enum: ["identity"] }, true),
};

function headerRefs(...names: string[]): JsonObject {
  return Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }]));
}

/** Headers an error status carries besides X-Request-Id. */
const ERROR_HEADERS: Record<string, string[]> = { "401": ["WWW-Authenticate"], "405": ["Allow"], "415": ["Accept-Encoding"], "429": ["Retry-After"], "503": ["Retry-After"] };

/**
 * Reasons no client of a documented path receives: CANCELLED is the
 * gateway's note of a client that went away (nothing is sent), HOST_NOT_ALLOWED
 * is the admin port's. (ROUTE_NOT_FOUND stays: a path variable's value that
 * no longer fits the template, one with a "/" say, meets it.)
 */
const NEVER_ANSWERED: ReadonlySet<Reason> = new Set(["CANCELLED", "HOST_NOT_ALLOWED"]);

/** What a request to a built-in path can be refused with: Node's parser, the Host and Expect checks, and another method than GET or HEAD. */
const BUILT_IN_REASONS: readonly Reason[] = ["MALFORMED_REQUEST", "HEADERS_TOO_LARGE", "REQUEST_TIMEOUT", "EXPECTATION_FAILED", "METHOD_NOT_ALLOWED"];

/** The HTTP status of a reason, as the gateway answers it. */
function statusOf(reason: Reason): string {
  return String(httpStatusFor(reasons[reason] as Code, reason));
}

/**
 * The reasons an API route can be answered with: those its RPC declares in
 * the proto, and those any call can meet, but for a body's on a route
 * without one and ROUTE_NOT_FOUND on a path without a variable.
 */
function routeReasons(route: Route): Reason[] {
  const hasVariable = route.template.segments.some((s) => "variable" in s);
  return (Object.keys(reasons) as Reason[]).filter(
    (reason) =>
      !NEVER_ANSWERED.has(reason) &&
      mayAnswer(route.method, reason) &&
      (route.body !== "" || !BODY_REASONS.has(reason)) &&
      (hasVariable || reason !== "ROUTE_NOT_FOUND"),
  );
}

/** The error statuses of a list of reasons, in order, each with the reasons that give it. */
function errorStatuses(named: readonly Reason[]): Map<string, Reason[]> {
  const byStatus = new Map<string, Reason[]>();
  for (const reason of named) {
    const status = statusOf(reason);
    byStatus.set(status, [...(byStatus.get(status) ?? []), reason]);
  }
  return new Map([...byStatus].sort(([a], [b]) => Number(a) - Number(b)));
}

/**
 * An error response of a status: a google.rpc.Status with the reasons that
 * give it (in the description to read, in `x-orderly-reasons` for code),
 * X-Request-Id, traceresponse on an API route (not a built-in path) and the
 * status's own headers.
 */
function errorResponse(status: string, named: readonly Reason[], api: boolean): JsonObject {
  return {
    description: `${STATUS_CODES[status] ?? "Error"}: ${named.join(", ")}`,
    "x-orderly-reasons": [...named],
    headers: headerRefs("X-Request-Id", ...(api ? ["traceresponse"] : []), ...(ERROR_HEADERS[status] ?? [])),
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
}

/** RPCs whose service may answer 202 Accepted (the order is PENDING, reserved through events). */
const MAY_ACCEPT: ReadonlySet<DescMethod> = new Set([OrderService.method.createOrder]);

function ref(typeName: string): JsonObject {
  return { $ref: `#/components/schemas/${typeName}` };
}

function scalarSchema(scalar: ScalarType): JsonObject {
  switch (scalar) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?(0|[1-9]\\d*)$", maxLength: 20 };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^(0|[1-9]\\d*)$", maxLength: 20 };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
  }
}

/** A field's behaviors (google.api.field_behavior, AIP-203): REQUIRED, OUTPUT_ONLY, … */
function behaviorsOf(field: DescField): readonly FieldBehavior[] {
  return hasOption(field, field_behavior) ? getOption(field, field_behavior) : [];
}

/** Whether a request must set the field: its behavior says REQUIRED, or its protovalidate rules do. */
function isRequired(field: DescField): boolean {
  return behaviorsOf(field).includes(FieldBehavior.REQUIRED) || (hasOption(field, fieldRules) && getOption(field, fieldRules).required);
}

/**
 * What JSON Schema can say of a field's protovalidate rules: string
 * patterns and lengths, 32-bit ranges, list sizes. A 64-bit integer is a
 * string in JSON, so its range is told in the description. Rules over
 * several fields (CEL) are not expressible and stay the server's.
 */
function constraintsOf(field: DescField): JsonObject {
  if (!hasOption(field, fieldRules)) return {};
  const { type } = getOption(field, fieldRules);
  switch (type.case) {
    case "string": {
      const out: JsonObject = {};
      if (isFieldSet(type.value, StringRulesSchema.field.minLen)) out.minLength = Number(type.value.minLen);
      if (isFieldSet(type.value, StringRulesSchema.field.maxLen)) out.maxLength = Number(type.value.maxLen);
      if (isFieldSet(type.value, StringRulesSchema.field.pattern)) out.pattern = ecmaPattern(type.value.pattern);
      if (type.value.notIn.length > 0) out.not = { enum: [...type.value.notIn] };
      return out;
    }
    case "int32": {
      const { greaterThan: low, lessThan: high } = type.value;
      return {
        ...(low.case === "gte" ? { minimum: low.value } : low.case === "gt" ? { exclusiveMinimum: low.value } : {}),
        ...(high.case === "lte" ? { maximum: high.value } : high.case === "lt" ? { exclusiveMaximum: high.value } : {}),
      };
    }
    case "int64": {
      const { greaterThan: low, lessThan: high } = type.value;
      const bounds = [
        low.case === "gte" ? `at least ${low.value}` : low.case === "gt" ? `more than ${low.value}` : "",
        high.case === "lte" ? `at most ${high.value}` : high.case === "lt" ? `less than ${high.value}` : "",
      ].filter(Boolean);
      return bounds.length === 0 ? {} : { description: `${bounds.join(", ")} (a 64-bit integer, as a string)` };
    }
    case "repeated":
      return {
        ...(isFieldSet(type.value, RepeatedRulesSchema.field.minItems) ? { minItems: Number(type.value.minItems) } : {}),
        ...(isFieldSet(type.value, RepeatedRulesSchema.field.maxItems) ? { maxItems: Number(type.value.maxItems) } : {}),
      };
    default:
      return {};
  }
}

/** Collects JSON Schemas (proto3 JSON mapping) of messages and enums into `schemas`. */
class SchemaCollector {
  readonly schemas: Record<string, JsonObject> = {};

  message(message: DescMessage, omit: ReadonlySet<string> = new Set()): JsonObject {
    const known = WELL_KNOWN[message.typeName];
    if (known) return known;
    if (omit.size === 0) {
      if (!(message.typeName in this.schemas)) {
        this.schemas[message.typeName] = {};
        this.schemas[message.typeName] = this.object(message, omit);
      }
      return ref(message.typeName);
    }
    return this.object(message, omit);
  }

  /** A message's object schema: its fields' schemas, output-only ones readOnly, and the fields a request must set. */
  private object(message: DescMessage, omit: ReadonlySet<string>): JsonObject {
    const properties: JsonObject = {};
    const required: string[] = [];
    for (const field of message.fields) {
      if (omit.has(field.name)) continue;
      const schema = this.field(field);
      properties[field.jsonName] = behaviorsOf(field).includes(FieldBehavior.OUTPUT_ONLY) ? { ...schema, readOnly: true } : schema;
      if (isRequired(field)) required.push(field.jsonName);
    }
    return described({ type: "object", properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false }, message.typeName);
  }

  private enumSchema(desc: DescEnum): JsonObject {
    if (!(desc.typeName in this.schemas)) {
      // JSON Schema describes no value of an enum by itself: the values' comments are listed in the enum's description.
      const values = desc.values.flatMap((v) => {
        const comment = COMMENTS[`${desc.typeName}.${v.name}`];
        return comment === undefined ? [] : [`- ${v.name}: ${comment.replaceAll("\n", " ")}`];
      });
      const schema = described({ type: "string", enum: desc.values.map((v) => v.name) }, desc.typeName);
      this.schemas[desc.typeName] = values.length === 0 ? schema : { ...schema, description: [schema.description, values.join("\n")].filter(Boolean).join("\n\n") };
    }
    return ref(desc.typeName);
  }

  private single(field: { scalar?: ScalarType; message?: DescMessage; enum?: DescEnum }): JsonObject {
    if (field.message) return this.message(field.message);
    if (field.enum) return this.enumSchema(field.enum);
    return scalarSchema(field.scalar!);
  }

  /** A field's schema, with what its protovalidate rules say (constraintsOf). */
  field(field: DescField): JsonObject {
    const constraints = constraintsOf(field);
    const schema = this.shape(field);
    return described(Object.keys(constraints).length === 0 ? schema : { ...schema, ...constraints }, `${field.parent.typeName}.${field.name}`);
  }

  private shape(field: DescField): JsonObject {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return this.enumSchema(field.enum);
      case "message":
        return this.message(field.message);
      case "list":
        return {
          type: "array",
          items: this.single({ scalar: field.scalar, message: field.message, enum: field.enum }),
        };
      case "map":
        return {
          type: "object",
          additionalProperties: this.single({ scalar: field.scalar, message: field.message, enum: field.enum }),
        };
    }
  }
}

function operation(route: Route, collector: SchemaCollector, cached: ReadonlySet<string>): JsonObject {
  const input = route.method.input;
  const pathFields = new Set(route.template.segments.flatMap((s) => ("variable" in s ? [s.variable] : [])));
  const parameters: JsonValue[] = [...pathFields].map((name) => {
    const field = fieldByName(input, name);
    return { name, in: "path", required: true, schema: field ? collector.field(field) : { type: "string" } };
  });
  if (route.body !== "*") {
    for (const field of input.fields) {
      if (pathFields.has(field.name) || field.name === route.body || field.name === "request_id") continue;
      if (field.fieldKind === "message" || field.fieldKind === "map") continue;
      parameters.push({ name: field.jsonName, in: "query", required: false, schema: collector.field(field) });
    }
  }
  parameters.push(
    { name: "X-Request-Id", in: "header", required: false, schema: { type: "string", pattern: REQUEST_ID_PATTERN.source }, description: "Correlation id, kept when valid and returned in the response's X-Request-Id; an invalid one is replaced, not refused" },
    { name: "X-Request-Timeout", in: "header", required: false, schema: { type: "integer", minimum: 1 }, description: "Deadline budget in milliseconds (capped); anything but a whole number of 1 or more is 400 INVALID_HEADER" },
  );
  if (cached.has(route.fullName)) {
    parameters.push({ name: "Cache-Control", in: "header", required: false, schema: { type: "string" }, description: "no-cache (or max-age=0; without a Cache-Control, Pragma: no-cache) asks for the query service's answer rather than the gateway's cached one, which that answer replaces; max-age=N takes a cached answer at most N seconds old and min-fresh=N one that stays cached N seconds yet (else the query service's, which replaces it); any other directive is answered as without one" });
  }
  if (takesIdempotencyKey(route)) {
    parameters.push({ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", pattern: IDEMPOTENCY_KEY_PATTERN.source }, description: "Makes retries safe: the same key and body return the same result; the same key with another body is 422 IDEMPOTENCY_KEY_REUSED" });
  }
  const success = (description: string, cached: boolean): JsonObject => ({
    description,
    headers: headerRefs("X-Request-Id", "traceresponse", ...(cached ? ["X-Cache", "Age"] : [])),
    content: { "application/json": { schema: responseSchema(route, collector) } },
  });
  const op: JsonObject = {
    operationId: `${route.service.name}_${route.method.name}`,
    tags: [route.service.name],
    summary: `${route.service.typeName}.${route.method.name}`,
    ...described({}, `${route.service.typeName}.${route.method.name}`),
    parameters,
    responses: {
      "200": success("OK", cached.has(route.fullName)),
      ...(MAY_ACCEPT.has(route.method)
        ? { "202": success("Accepted: the inventory could not answer in time, so the order is PENDING and is reserved through events; GET /v1/orders/{id}?minVersion=2 waits for the decision", false) }
        : {}),
      ...Object.fromEntries([...errorStatuses(routeReasons(route))].map(([status, named]) => [status, errorResponse(status, named, true)])),
    },
  };
  if (route.body !== "") {
    const schema =
      route.body === "*" ? collector.message(input, new Set([...pathFields, "request_id"])) : collector.field(fieldByName(input, route.body)!);
    // A body of the whole request ("*") may be left out unless a field of it is required (a restock's quantity).
    const required = route.body !== "*" || input.fields.some((f) => !pathFields.has(f.name) && isRequired(f));
    op.requestBody = { required, content: { "application/json": { schema } } };
  }
  return op;
}

function responseSchema(route: Route, collector: SchemaCollector): JsonObject {
  if (route.responseBody === "") return collector.message(route.method.output);
  return collector.field(fieldByName(route.method.output, route.responseBody)!);
}

/** The JSON of /readyz: whether every downstream service answers, and each one's health (UNREACHABLE when it did not answer). */
const READINESS_SCHEMA: JsonObject = {
  type: "object",
  properties: {
    status: { type: "string", enum: ["ready", "not ready"] },
    services: {
      type: "object",
      additionalProperties: { type: "string", enum: [...Object.values(HealthCheckResponse_ServingStatus).filter((v) => typeof v === "string"), "UNREACHABLE"] },
    },
  },
  required: ["status", "services"],
  additionalProperties: false,
};

/** The HEAD the gateway answers for a GET: its parameters, statuses and headers, without a body. */
function headOf(get: JsonObject): JsonObject {
  const responses = Object.fromEntries(
    Object.entries(get.responses as JsonObject).map(([status, response]) => {
      const { content: _body, ...withoutBody } = response as JsonObject;
      return [status, withoutBody];
    }),
  );
  return { ...get, operationId: `${get.operationId as string}_Head`, responses };
}

/** A built-in GET on the API's port (http-server.ts): open to anyone, never rate limited or shed; `answers` maps each status it answers with to its body's schema. */
function builtIn(operationId: string, summary: string, answers: Record<string, [description: string, schema: JsonObject]>): JsonObject {
  return {
    get: {
      operationId,
      tags: ["gateway"],
      summary,
      security: [],
      responses: {
        ...Object.fromEntries(
          Object.entries(answers).map(([status, [description, schema]]) => [
            status,
            { description, headers: headerRefs("X-Request-Id", ...(ERROR_HEADERS[status] ?? [])), content: { "application/json": { schema } } },
          ]),
        ),
        ...Object.fromEntries([...errorStatuses(BUILT_IN_REASONS)].map(([status, named]) => [status, errorResponse(status, named, false)])),
      },
    },
  };
}

/** The gateway's built-in paths: liveness, readiness and this document. */
function builtInPaths(): Record<string, JsonObject> {
  return {
    "/healthz": builtIn("Gateway_Healthz", "The gateway process is up", {
      "200": [
        "Live: the requests in flight and the event loop's lag",
        {
          type: "object",
          properties: { status: { type: "string", const: "ok" }, inFlight: { type: "integer", minimum: 0 }, eventLoopLagMs: { type: "number", minimum: 0 } },
          required: ["status", "inFlight", "eventLoopLagMs"],
          additionalProperties: false,
        },
      ],
    }),
    "/readyz": builtIn("Gateway_Readyz", "Every service the gateway calls answers", {
      "200": ["Ready: every service is SERVING", READINESS_SCHEMA],
      "503": ["Not ready: a service is not SERVING or did not answer", READINESS_SCHEMA],
    }),
    "/openapi.json": builtIn("Gateway_OpenApi", "This document", { "200": ["The OpenAPI document", { type: "object" }] }),
  };
}

/**
 * An OpenAPI 3.1 document of the routes, derived from the same descriptors as
 * the routes themselves, and of the gateway's built-in paths. `cachedReads`:
 * the full method names of the reads the gateway's cache serves (their 200
 * may carry X-Cache).
 */
export function openApiDocument(routes: readonly Route[], info: { title: string; version: string }, cachedReads: ReadonlySet<string> = new Set()): JsonObject {
  const collector = new SchemaCollector();
  const paths: Record<string, JsonObject> = builtInPaths();
  for (const route of routes) {
    const path = openApiPath(route.template);
    paths[path] ??= {};
    paths[path][route.httpMethod.toLowerCase()] = operation(route, collector, cachedReads);
  }
  for (const item of Object.values(paths)) if (item.get !== undefined) item.head = headOf(item.get as JsonObject);
  collector.message(StatusSchema);
  collector.message(ErrorInfoSchema);
  collector.message(BadRequestSchema);
  const errorSchema: JsonObject = {
    allOf: [ref(StatusSchema.typeName)],
    description: `details hold a google.rpc.ErrorInfo whose reason is one of: ${Object.keys(reasons).join(", ")}`,
  };
  return {
    openapi: "3.1.0",
    info: { ...info, description: "Orderly's HTTP API, generated from the google.api.http annotations of its protos." },
    paths,
    // Every route needs a bearer token (a JWT); the built-in paths (/healthz, /readyz, /openapi.json) say they need none.
    security: [{ bearerAuth: [] }],
    components: {
      securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: { ...collector.schemas, Error: errorSchema },
      headers: HEADERS,
    },
  };
}
