import { ScalarType, fromJson, getOption, hasOption, isFieldSet, toJson, type DescEnum, type DescField, type DescMessage, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { RepeatedRulesSchema, field as fieldRules } from "../proto/gen/buf/validate/validate_pb.js";
import { OrderlyError, validationError } from "../shared/errors/index.js";
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

/** A message's field by its proto name or its JSON name. */
export function fieldByName(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.name === name || f.jsonName === name);
}

/** Whether a route's request takes an idempotency key (a `request_id` field, which the Idempotency-Key header sets). */
export function takesIdempotencyKey(route: Route): boolean {
  return fieldByName(route.method.input, REQUEST_ID_FIELD) !== undefined;
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
    const child: JsonObject = next !== undefined && isJsonObject(next) ? next : {};
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
  if (values.length > 1) {
    throw new OrderlyError("INVALID_FIELD", `query parameter "${field.name}" must not repeat`, { violations: [{ field: field.name, description: "given more than once in the query" }] });
  }
  return convert(values[0]!);
}

/** The scalar types proto3 JSON writes as integers: what each is called in an error, and its range. */
const INTEGER_SCALARS: ReadonlyMap<ScalarType, { what: string; min: bigint; max: bigint }> = new Map(
  (
    [
      [[ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32], "a 32-bit integer", -(2n ** 31n), 2n ** 31n - 1n],
      [[ScalarType.UINT32, ScalarType.FIXED32], "a 32-bit unsigned integer", 0n, 2n ** 32n - 1n],
      [[ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64], "a 64-bit integer", -(2n ** 63n), 2n ** 63n - 1n],
      [[ScalarType.UINT64, ScalarType.FIXED64], "a 64-bit unsigned integer", 0n, 2n ** 64n - 1n],
    ] as const
  ).flatMap(([scalars, what, min, max]) => scalars.map((scalar) => [scalar, { what, min, max }] as const)),
);
/** A JSON number's form: what proto3 JSON allows in a string for an integer field (decimal; no 0x, 0b, 0o, + or leading zeros). */
const JSON_NUMBER = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;
/** Digits beyond which no integer field's value can be: the number is left as written, and checkScalar refuses it as out of range. */
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
  return sign! + digits.slice(0, point).padEnd(point, "0");
}

/**
 * Whether JSON.parse reads a JSON number token as the value it is written
 * for, as far as an integer field can tell: false for one that rounds to a
 * whole number it is not (0.99999999999999999 → 1, 1e-400 → 0), or for a
 * whole number past 2^53 that loses digits (a 64-bit value must then come as
 * a string). A fraction that stays one, or a number past any range, is left
 * to the field's own check.
 */
export function parsesExactly(token: string): boolean {
  const value = Number(token);
  if (!Number.isInteger(value)) return true;
  const match = JSON_NUMBER.exec(token);
  const exact = match === null ? undefined : integerText(match);
  return exact !== undefined && (Number.isSafeInteger(value) || !/^-?\d+$/.test(exact) || BigInt(exact) === BigInt(value));
}

/**
 * A number of a request's JSON that JSON.parse did not read as written (see
 * parsesExactly), left where it stood by readJson so that the field given it
 * is named when it is refused.
 */
export class InexactNumber {
  constructor(readonly written: string) {}
}

/** Where `quoted` writes an InexactNumber held in a value, for the number to be put back as written. */
const INEXACT_MARK = "\u0000inexact\u0000";

/** Whether a JSON value is an object (not an array, nor a number readJson marked as inexact). */
function isJsonObject(value: JsonValue): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !((value as unknown) instanceof InexactNumber);
}

const INEXACT = "would not be read as written (a JSON number keeps 53 bits): send a whole number, a 64-bit one as a string";

/** INVALID_FIELD for a number JSON.parse would not read as written, not held by any one field. */
export function inexactNumber(written: string): OrderlyError {
  return new OrderlyError("INVALID_FIELD", `the number ${written.slice(0, 40)} ${INEXACT}`);
}

/** INVALID_FIELD naming one field of the request by its path. */
function invalidField(field: string, description: string): OrderlyError {
  return new OrderlyError("INVALID_FIELD", `invalid request: ${field}: ${description}`, { violations: [{ field, description }] });
}

/** A JSON value as an error message quotes it (at most 40 characters of it). */
function quoted(value: JsonValue): string {
  // A number past a double's range was parsed as Infinity, which JSON.stringify writes as null.
  if ((value as unknown) instanceof InexactNumber) return (value as unknown as InexactNumber).written.slice(0, 40);
  if (typeof value === "number" && !Number.isFinite(value)) return "a number beyond any range";
  // An inexact number inside the value (a list of them, say) as the client wrote it, not as a string.
  const text = JSON.stringify(value, (_key, held: unknown) => (held instanceof InexactNumber ? INEXACT_MARK + held.written : held));
  return text.replace(/"\\u0000inexact\\u0000([^"]*)"/g, "$1").slice(0, 40);
}

/**
 * Checks a request's JSON against its message type before protobuf-es reads
 * it, so that a refusal names the field by its path (`order.items[0].quantity`),
 * as protovalidate's violations do: a key that is no field, a field given by
 * both its JSON and its proto name, a value of the wrong JSON type. Integers
 * given as strings are checked and rewritten as plain decimals (integerOf).
 * Fields of Google's well-known types (Timestamp, …: an Order's output-only
 * times) are read by protobuf-es, and named here when it refuses them; maps
 * are left to protobuf-es (no request of Orderly's takes one).
 */
function checkJson(message: DescMessage, json: JsonObject, path = ""): void {
  for (const key of Object.keys(json)) {
    const field = fieldByName(message, key);
    if (field === undefined) throw invalidField(path + key, "is not a field of the request");
    if (key !== field.jsonName && json[field.jsonName] !== undefined) throw invalidField(path + field.name, "is set twice (by its JSON and its proto name)");
  }
  for (const field of message.fields) {
    const key = json[field.jsonName] !== undefined ? field.jsonName : field.name;
    const value = json[key];
    if (value === undefined || value === null) continue;
    const name = path + field.name;
    switch (field.fieldKind) {
      case "scalar":
        json[key] = checkScalar(name, field.scalar, value);
        break;
      case "enum":
        checkEnum(name, field.enum, value);
        break;
      case "message":
        checkMessage(name, field.message, value);
        break;
      case "list": {
        if (!Array.isArray(value)) throw invalidField(name, `must be a list, not ${quoted(value)}`);
        // Refused here as the service's rules would, before thousands of items are read and sent on to be checked one by one.
        const maxItems = maxItemsOf(field);
        if (maxItems !== undefined && value.length > maxItems) throw validationError([{ field: name, description: `must contain no more than ${maxItems} item(s)` }]);
        for (let i = 0; i < value.length; i++) {
          if (field.listKind === "scalar") value[i] = checkScalar(`${name}[${i}]`, field.scalar, value[i]!);
          else if (field.listKind === "message") checkMessage(`${name}[${i}]`, field.message, value[i]!);
        }
        break;
      }
    }
  }
}

/** Per list field: the most items its protovalidate rules allow (max_items), read from its options once. */
const maxItemsByField = new WeakMap<DescField, number | undefined>();

function maxItemsOf(field: DescField): number | undefined {
  if (maxItemsByField.has(field)) return maxItemsByField.get(field);
  const rules = hasOption(field, fieldRules) ? getOption(field, fieldRules).type : undefined;
  const max = rules?.case === "repeated" && isFieldSet(rules.value, RepeatedRulesSchema.field.maxItems) ? Number(rules.value.maxItems) : undefined;
  maxItemsByField.set(field, max);
  return max;
}

/**
 * An enum field's JSON value: one of its value names (as proto3 JSON writes it) or a 32-bit number; anything else
 * INVALID_FIELD naming the field, not protobuf-es's message without it.
 */
function checkEnum(name: string, enumType: DescEnum, value: JsonValue): void {
  const known = typeof value === "string" ? enumType.values.some((v) => v.name === value) : typeof value === "number" && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31;
  if (!known) throw invalidField(name, `must be one of ${enumType.values.map((v) => v.name).join(", ")} (${enumType.name}) or its number, not ${quoted(value)}`);
}

function checkMessage(name: string, message: DescMessage, value: JsonValue): void {
  if (message.typeName.startsWith("google.protobuf.")) {
    // A well-known type (an Order's createTime, say) has a JSON form of its own: checked by protobuf-es, named here.
    try {
      fromJson(message, value);
    } catch {
      throw invalidField(name, `must be a ${message.typeName} in its proto3 JSON form${message.typeName === "google.protobuf.Timestamp" ? " (an RFC 3339 time)" : ""}, not ${quoted(value)}`);
    }
    return;
  }
  if (!isJsonObject(value)) throw invalidField(name, `must be an object, not ${quoted(value)}`);
  checkJson(message, value, `${name}.`);
}

/** A UTF-16 surrogate not paired with its other half (with the u flag a pair is one code point, not \p{Cs}). */
const LONE_SURROGATE = /\p{Cs}/u;

/** A scalar field's JSON value, checked against its type (an integer given as a string: as a plain decimal). */
function checkScalar(name: string, scalar: ScalarType, value: JsonValue): JsonValue {
  if ((value as unknown) instanceof InexactNumber) throw invalidField(name, `${quoted(value)} ${INEXACT}`);
  const integer = INTEGER_SCALARS.get(scalar);
  if (integer !== undefined) {
    if (typeof value !== "string" && (typeof value !== "number" || !Number.isInteger(value))) throw invalidField(name, `must be ${integer.what}, not ${quoted(value)}`);
    const text = typeof value === "string" ? integerOf(name, value) : undefined;
    // A whole number with more digits than any integer field takes stays in exponent form: out of range too.
    const exact = text === undefined ? BigInt(value as number) : /^-?\d+$/.test(text) ? BigInt(text) : undefined;
    if (exact === undefined || exact < integer.min || exact > integer.max) throw invalidField(name, `must be ${integer.what}: ${quoted(value)} is out of range`);
    return text ?? value;
  }
  const expected = scalar === ScalarType.STRING || scalar === ScalarType.BYTES ? "string" : scalar === ScalarType.BOOL ? "boolean" : "number";
  // JSON may escape half of a surrogate pair alone ("\ud800"), which is no text: protobuf-es refuses it without a name.
  if (scalar === ScalarType.STRING && typeof value === "string" && LONE_SURROGATE.test(value)) throw invalidField(name, "must be Unicode text: it holds half of a surrogate pair alone");
  if (typeof value === expected || (expected === "number" && typeof value === "string")) return value;
  throw invalidField(name, `must be ${expected === "string" ? "a string" : expected === "boolean" ? "true or false" : "a number"}, not ${quoted(value)}`);
}

/** `value`, given as a string for the integer field `name`, as a plain decimal integer; INVALID_FIELD unless it is one. */
function integerOf(name: string, value: string): string {
  const match = JSON_NUMBER.exec(value);
  const integer = match === null ? undefined : integerText(match);
  if (integer === undefined) throw invalidField(name, `${quoted(value)} is not a decimal integer`);
  return integer;
}

/** A name a query parameter may have (a field's name or path). */
const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_.]{0,63}$/;

/**
 * An unknown query parameter's name as the error's message (which is logged) quotes it: only a name that looks like one,
 * as a secret sent by mistake may stand where a name should (`?access_token%3D…`, a bare `?…`).
 */
function quotedName(key: string): string {
  return PARAMETER_NAME.test(key) ? `"${key}"` : "(not a parameter name)";
}

/**
 * A query string's parameters (`search`, without its "?"). A name or value
 * that is not valid percent-encoded UTF-8 is INVALID_FIELD, as a path
 * variable's is, rather than read as it stands (a lone "%") or with U+FFFD
 * in its place (as URLSearchParams would). Its field is its name when that
 * looks like one.
 */
export function queryParameters(search: string): URLSearchParams {
  if (search.includes("%")) {
    for (const pair of search.split("&")) {
      if (!pair.includes("%")) continue;
      try {
        decodeURIComponent(pair.replaceAll("+", " "));
      } catch {
        const equals = pair.indexOf("=");
        const name = equals < 0 ? pair : pair.slice(0, equals);
        const description = "is not valid percent-encoded UTF-8";
        const field = PARAMETER_NAME.test(name) ? name : "(not a parameter name)";
        throw new OrderlyError("INVALID_FIELD", `invalid request: query parameter ${quotedName(name)}: its name or value ${description}`, { violations: [{ field, description: `its name or value ${description}` }] });
      }
    }
  }
  return new URLSearchParams(search);
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
    if (wantsObject && !isJsonObject(parts.body)) {
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
        throw new OrderlyError("INVALID_FIELD", `unknown query parameter ${quotedName(key)}`, {
          violations: [{ field: key, description: "not a query parameter of this route" }],
        });
      }
      setPath(input, json, field.name, queryValue(field, parts.query.getAll(key)), "query", origins);
    }
  } else if ([...parts.query.keys()].length > 0) {
    // The first, as for an unknown parameter of a route that takes some: an answer no larger for a longer query.
    const [first] = parts.query.keys();
    throw new OrderlyError("INVALID_FIELD", "this route takes no query parameters", { violations: [{ field: first!, description: "not a query parameter of this route (it takes none)" }] });
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
  checkJson(input, json);
  try {
    return fromJson(input, json, { ignoreUnknownFields: false });
  } catch (error) {
    // What checkJson does not catch (a value out of its type's range, say), in protobuf-es's words without its prefix.
    const message = error instanceof Error ? error.message.replace(/^cannot decode (?:message|field) [\w.]+ from JSON: /, "") : "invalid JSON";
    throw new OrderlyError("INVALID_FIELD", `invalid request: ${message}`, { cause: error });
  }
}

/** The HTTP body of a response: its proto3 JSON (default values included), or the `response_body` field of it. */
export function responseToHttp(route: Route, response: Message): JsonValue {
  const json = toJson(route.method.output, response, { alwaysEmitImplicit: true }) as JsonObject;
  if (route.responseBody === "") return json;
  const field = fieldByName(route.method.output, route.responseBody);
  return field === undefined ? json : (json[field.jsonName] ?? null);
}
