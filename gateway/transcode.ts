import { ScalarType, fromJson, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { OrderlyError, type FieldViolation } from "../shared/errors/index.js";
import type { Route } from "./routes/index.js";

/** The parts of an HTTP request that map onto a request message. */
export interface HttpRequestParts {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body, or undefined when there was none. */
  body: JsonValue | undefined;
  /** The Idempotency-Key header, if sent. */
  idempotencyKey: string | undefined;
}

const REQUEST_ID_FIELD = "request_id";

function fieldByName(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.name === name || f.jsonName === name);
}

/** Where each field of a request was set (path, query, header), by field path; a field set before any of them came in the body. */
type Origins = Map<string, string>;

/**
 * Sets a value at a proto field path ("a.b") in a JSON object, using JSON
 * names; INVALID_FIELD when the field is set already (in the body, by its
 * JSON or its proto name, or by another source), whatever the value.
 */
function setPath(message: DescMessage, json: JsonObject, path: string, value: JsonValue, source: string, origins: Origins): void {
  const names = path.split(".");
  let schema: DescMessage = message;
  let target = json;
  names.forEach((name, i) => {
    const field = fieldByName(schema, name);
    if (field === undefined) throw new OrderlyError("INVALID_FIELD", `${source} "${path}" is not a field of the request`);
    if (i === names.length - 1) {
      if (target[field.jsonName] !== undefined || target[field.name] !== undefined) {
        const earlier = origins.get(path) ?? "body";
        throw new OrderlyError("INVALID_FIELD", earlier === source ? `"${path}" is set twice in the ${source}` : `"${path}" is set by both the ${earlier} and the ${source}`, {
          violations: [{ field: path, description: `set by the ${earlier}` }],
        });
      }
      target[field.jsonName] = value;
      origins.set(path, source);
      return;
    }
    if (field.fieldKind !== "message") throw new OrderlyError("INVALID_FIELD", `${source} "${path}" is not a field path of the request`);
    const next = target[field.jsonName];
    const child: JsonObject = typeof next === "object" && next !== null && !Array.isArray(next) ? next : {};
    target[field.jsonName] = child;
    target = child;
    schema = field.message;
  });
}

function queryValue(field: DescField, values: string[]): JsonValue {
  const convert = (value: string): JsonValue => {
    if (field.fieldKind === "scalar" || field.fieldKind === "list") {
      if (field.scalar === ScalarType.BOOL) {
        if (value === "true") return true;
        if (value === "false") return false;
      }
    }
    return value;
  };
  if (field.fieldKind === "list") return values.map(convert);
  if (values.length > 1) throw new OrderlyError("INVALID_FIELD", `query parameter "${field.name}" must not repeat`);
  return convert(values[0]!);
}

/** The scalar types proto3 JSON writes as integers. */
const INTEGER_SCALARS: ReadonlySet<ScalarType> = new Set([
  ScalarType.INT32, ScalarType.INT64, ScalarType.UINT32, ScalarType.UINT64, ScalarType.SINT32, ScalarType.SINT64,
  ScalarType.FIXED32, ScalarType.FIXED64, ScalarType.SFIXED32, ScalarType.SFIXED64,
]);
/** A JSON number's form: what proto3 JSON allows in a string for an integer field (decimal; no 0x, 0b, 0o, + or leading zeros). */
const JSON_NUMBER = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;
/** Digits beyond which no integer field's value can be: the number is left as written, for protobuf-es to refuse as out of range. */
const MAX_INTEGER_DIGITS = 40;

/**
 * The integer a JSON number's text in exponent or fraction form denotes, as
 * plain decimal digits ("1e3" and "1000.0" → "1000"), computed on the digits
 * so that no 64-bit value loses precision; undefined when it has a fraction
 * ("1.5"). protobuf-es reads such strings for 32-bit fields but refuses them
 * for 64-bit ones, which proto3 JSON accepts ("exponent notation is also
 * accepted", for numbers and strings alike).
 */
function integerText(match: RegExpExecArray): string | undefined {
  const [text, sign, whole, fraction = "", exponent] = match;
  if (fraction === "" && exponent === undefined) return text;
  const digits = (whole! + fraction).replace(/^0+/, "");
  if (digits === "") return "0";
  // The decimal point's place among the digits, once the leading zeros are dropped.
  const point = whole!.length + Number(exponent ?? 0) - (whole!.length + fraction.length - digits.length);
  if (point > MAX_INTEGER_DIGITS) return text;
  if (point < digits.length && /[^0]/.test(digits.slice(Math.max(0, point)))) return undefined;
  return sign! + (point <= 0 ? "0" : digits.slice(0, point).padEnd(point, "0"));
}

/**
 * Checks each integer field given as a string: INVALID_FIELD when it is not
 * a JSON number (protobuf-es reads "0x10", "0b11", "0o7" and "+5" as numbers,
 * which proto3 JSON does not allow) or has a fraction, and exponent or
 * fraction forms are rewritten in place as plain integers (integerText).
 * Walks the fields of `message` present in `json`, into messages and lists
 * (not maps or wrapper types: no request of Orderly's has them).
 */
function checkIntegerStrings(message: DescMessage, json: JsonObject, path = ""): void {
  for (const field of message.fields) {
    const key = json[field.jsonName] !== undefined ? field.jsonName : field.name;
    const value = json[key];
    if (value === undefined || value === null) continue;
    const name = path + field.name;
    if ((field.fieldKind === "scalar" || field.fieldKind === "list") && field.scalar !== undefined && INTEGER_SCALARS.has(field.scalar)) {
      if (!Array.isArray(value)) json[key] = integerOf(name, value);
      else for (let i = 0; i < value.length; i++) value[i] = integerOf(name, value[i]!);
    } else if ((field.fieldKind === "message" || field.fieldKind === "list") && field.message !== undefined) {
      if (!Array.isArray(value)) {
        if (typeof value === "object") checkIntegerStrings(field.message, value, `${name}.`);
      } else {
        for (let i = 0; i < value.length; i++) {
          const item = value[i];
          if (typeof item === "object" && item !== null && !Array.isArray(item)) checkIntegerStrings(field.message, item, `${name}[${i}].`);
        }
      }
    }
  }
}

/** `value`, given for the integer field `name`: a string as a plain decimal integer, or INVALID_FIELD; anything else as it is. */
function integerOf(name: string, value: JsonValue): JsonValue {
  if (typeof value !== "string") return value;
  const match = JSON_NUMBER.exec(value);
  const integer = match === null ? undefined : integerText(match);
  if (integer === undefined) {
    throw new OrderlyError("INVALID_FIELD", `invalid request: ${name}: ${JSON.stringify(value.slice(0, 40))} is not a decimal integer`, {
      violations: [{ field: name, description: "must be a decimal integer" }],
    });
  }
  return integer;
}

/** How protobuf-es names a JSON type it expected, as a client reads it. */
const JSON_TYPES: Record<string, string> = {
  string: "a string",
  boolean: "true or false",
  "number (int32)": "a 32-bit integer",
  "number (uint32)": "a 32-bit unsigned integer",
  "bigint (int64)": "a 64-bit integer",
  "bigint (uint64)": "a 64-bit unsigned integer",
  Array: "a list",
  object: "an object",
};

/**
 * The field violation behind protobuf-es's refusal of a request's JSON
 * ("cannot decode field orderly.x.v1.Msg.field from JSON: expected string,
 * got 5"), in a client's terms: the field's proto name (as every other
 * violation names it) and what it must be.
 */
function decodeViolation(message: string): FieldViolation {
  const unknown = /^cannot decode message [\w.]+ from JSON: key "(.*)" is unknown$/.exec(message);
  if (unknown) return { field: unknown[1]!, description: "is not a field of the request" };
  const field = /^cannot decode field [\w.]+\.(\w+) from JSON: (.*)$/.exec(message);
  if (field === null) return { field: "", description: "is not what the request's JSON mapping allows" };
  const [, name, why] = field;
  const expected = /^expected ([^,:]+?)(?:, got (.*)|: (.*) out of range)$/.exec(why!);
  if (expected === null) return { field: name!, description: "has the wrong type" };
  const type = JSON_TYPES[expected[1]!] ?? expected[1]!;
  return { field: name!, description: expected[3] !== undefined ? `must be ${type}: ${expected[3]} is not` : `must be ${type}, not ${expected[2]}` };
}

/**
 * Builds the request message of a route from the HTTP request, following
 * the google.api.http rules: path variables, then the body (one field, or
 * "*"), then query parameters for the fields left; the Idempotency-Key header
 * fills `request_id`. Unknown fields and wrong types are INVALID_FIELD.
 */
export function requestFromHttp(route: Route, parts: HttpRequestParts): Message {
  const input = route.method.input;
  let json: JsonObject = {};
  if (route.body !== "" && parts.body !== undefined) {
    const field = route.body === "*" ? undefined : fieldByName(input, route.body);
    const wantsObject = route.body === "*" || field?.fieldKind === "message";
    if (wantsObject && (typeof parts.body !== "object" || parts.body === null || Array.isArray(parts.body))) {
      throw new OrderlyError("INVALID_FIELD", "the request body must be a JSON object");
    }
    if (field === undefined) json = { ...(parts.body as JsonObject) };
    else json[field.jsonName] = parts.body;
  }
  const origins: Origins = new Map();
  for (const [path, value] of Object.entries(parts.params)) setPath(input, json, path, value, "path", origins);
  if (route.body !== "*") {
    const keys = new Set(parts.query.keys());
    for (const key of keys) {
      const field = fieldByName(input, key);
      if (field === undefined || field.fieldKind === "message" || field.fieldKind === "map") {
        throw new OrderlyError("INVALID_FIELD", `unknown query parameter "${key}"`, {
          violations: [{ field: key, description: "not a query parameter of this route" }],
        });
      }
      setPath(input, json, field.name, queryValue(field, parts.query.getAll(key)), "query", origins);
    }
  } else if ([...parts.query.keys()].length > 0) {
    throw new OrderlyError("INVALID_FIELD", "this route takes no query parameters");
  }
  const requestIdField = fieldByName(input, REQUEST_ID_FIELD);
  if (requestIdField !== undefined && (requestIdField.jsonName in json || REQUEST_ID_FIELD in json)) {
    // Over HTTP the idempotency key has one place, the header (as the OpenAPI document says).
    throw new OrderlyError("INVALID_FIELD", "request_id is set by the Idempotency-Key header, not in the body or query", {
      violations: [{ field: REQUEST_ID_FIELD, description: "send it as the Idempotency-Key header" }],
    });
  }
  if (parts.idempotencyKey !== undefined) {
    const field = requestIdField;
    if (field !== undefined) setPath(input, json, REQUEST_ID_FIELD, parts.idempotencyKey, "Idempotency-Key header", origins);
  }
  checkIntegerStrings(input, json);
  try {
    return fromJson(input, json, { ignoreUnknownFields: false });
  } catch (error) {
    const violation = decodeViolation(error instanceof Error ? error.message : "");
    throw new OrderlyError("INVALID_FIELD", `invalid request: ${violation.field}: ${violation.description}`, { cause: error, violations: [violation] });
  }
}

/** The HTTP body of a response: its proto3 JSON (default values included), or the `response_body` field of it. */
export function responseToHttp(route: Route, response: Message): JsonValue {
  const json = toJson(route.method.output, response, { alwaysEmitImplicit: true }) as JsonObject;
  if (route.responseBody === "") return json;
  const field = fieldByName(route.method.output, route.responseBody);
  return field === undefined ? json : (json[field.jsonName] ?? null);
}
