import { ScalarType, getOption, hasOption, isFieldSet, type DescEnum, type DescMethod, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Int32RulesSchema, Int64RulesSchema, RepeatedRulesSchema, StringRulesSchema, field as fieldRules } from "../proto/gen/buf/validate/validate_pb.js";
import { FieldBehavior, field_behavior } from "../proto/gen/google/api/field_behavior_pb.js";
import { ecmaPattern } from "../shared/grpc/pattern-match.js";
import { StatusSchema } from "../proto/gen/google/rpc/status_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../proto/gen/google/rpc/error_details_pb.js";
import { STATUS_CODES } from "node:http";
import { OrderService } from "../proto/gen/orderly/order/v1/order_pb.js";
import { httpStatusFor, reasons, type Code, type Reason } from "../shared/errors/index.js";
import { openApiPath, type Route } from "./routes/index.js";

const WELL_KNOWN: Record<string, JsonObject> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, required: ["@type"], additionalProperties: true },
};

/** Headers an error status carries, and what they say. */
const ERROR_HEADERS: Record<string, Record<string, string>> = {
  "401": { "WWW-Authenticate": 'Bearer realm="orderly", with error="invalid_token" when the credentials were refused' },
  "405": { Allow: "The methods the path takes" },
  "429": { "Retry-After": "Seconds to wait before trying again" },
  "503": { "Retry-After": "Seconds to wait before trying again" },
};

/** Every error status the API answers with, and the reasons that give it (each reason's status, as the gateway maps it). */
function errorStatuses(): [status: string, reasons: string[]][] {
  const byStatus = new Map<number, string[]>();
  for (const [reason, code] of Object.entries(reasons) as [Reason, Code][]) {
    const status = httpStatusFor(code, reason);
    byStatus.set(status, [...(byStatus.get(status) ?? []), reason]);
  }
  return [...byStatus].sort(([a], [b]) => a - b).map(([status, named]) => [String(status), named]);
}

/** The error statuses every route can answer with, and when. */
const ERROR_RESPONSES: Record<string, string> = Object.fromEntries(
  errorStatuses().map(([status, named]) => [status, `${STATUS_CODES[status] ?? (status === "499" ? "Client Closed Request" : "Error")}: ${named.join(", ")}`]),
);

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
      return { type: "string", format: "int64", pattern: "^-?\\d+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^\\d+$" };
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
    return { type: "object", properties, ...(required.length > 0 ? { required } : {}), additionalProperties: false };
  }

  private enumSchema(desc: DescEnum): JsonObject {
    if (!(desc.typeName in this.schemas)) {
      this.schemas[desc.typeName] = { type: "string", enum: desc.values.map((v) => v.name) };
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
    return Object.keys(constraints).length === 0 ? schema : { ...schema, ...constraints };
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

function fieldByName(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.name === name || f.jsonName === name);
}

function operation(route: Route, collector: SchemaCollector): JsonObject {
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
    { name: "X-Request-Id", in: "header", required: false, schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" }, description: "Correlation id; generated when absent and returned in the response" },
    { name: "X-Request-Timeout", in: "header", required: false, schema: { type: "integer", minimum: 1 }, description: "Deadline budget in milliseconds (capped)" },
  );
  if (fieldByName(input, "request_id")) {
    parameters.push({ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", pattern: "^[!-~]{1,128}$" }, description: "Makes retries safe: the same key and body return the same result" });
  }
  const op: JsonObject = {
    operationId: `${route.service.name}_${route.method.name}`,
    tags: [route.service.name],
    summary: `${route.service.typeName}.${route.method.name}`,
    parameters,
    responses: {
      "200": {
        description: "OK",
        content: { "application/json": { schema: responseSchema(route, collector) } },
      },
      ...(MAY_ACCEPT.has(route.method)
        ? {
            "202": {
              description: "Accepted: the inventory could not answer in time, so the order is PENDING and is reserved through events; GET /v1/orders/{id}?minVersion=2 waits for the decision",
              content: { "application/json": { schema: responseSchema(route, collector) } },
            },
          }
        : {}),
      ...Object.fromEntries(Object.keys(ERROR_RESPONSES).map((status) => [status, { $ref: `#/components/responses/Error${status}` }])),
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

/** An OpenAPI 3.1 document of the routes, derived from the same descriptors as the routes themselves. */
export function openApiDocument(routes: readonly Route[], info: { title: string; version: string }): JsonObject {
  const collector = new SchemaCollector();
  const paths: Record<string, JsonObject> = {};
  for (const route of routes) {
    const path = openApiPath(route.template);
    paths[path] ??= {};
    paths[path][route.httpMethod.toLowerCase()] = operation(route, collector);
  }
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
    // Every route needs a bearer token (a JWT); /healthz, /readyz and /openapi.json are not routes of the API.
    security: [{ bearerAuth: [] }],
    components: {
      securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: collector.schemas,
      responses: Object.fromEntries(
        Object.entries(ERROR_RESPONSES).map(([status, description]) => [
          `Error${status}`,
          {
            description,
            content: { "application/json": { schema: errorSchema } },
            ...(ERROR_HEADERS[status] ? { headers: Object.fromEntries(Object.entries(ERROR_HEADERS[status]!).map(([name, about]) => [name, { description: about, schema: { type: "string" } }])) } : {}),
          },
        ]),
      ),
    },
  };
}
