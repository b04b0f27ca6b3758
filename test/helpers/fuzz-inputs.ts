import fc from "fast-check";
import { getOption, hasOption, isFieldSet, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import {
  Ignore,
  RepeatedRulesSchema,
  StringRulesSchema,
  field as fieldRulesOption,
  message as messageRulesOption,
  type FieldRules,
} from "../../proto/gen/buf/validate/validate_pb.js";
import { Role, access } from "../../proto/gen/orderly/auth/v1/access_pb.js";
import type { Route } from "../../gateway/routes/index.js";
import { simpleRegExp } from "../../shared/grpc/pattern-match.js";
import type { Caller } from "./system.js";

/*
 * Inputs of the fuzz suite, derived from the request messages of the HTTP
 * routes: their fields, their buf.validate rules, their google.api.http
 * binding (path variables, query parameters, body) and their
 * orderly.auth.v1.access roles. Nothing here names a route or a field of
 * Orderly's API; the facts of a running system (SKUs, order ids, page
 * tokens) come in through a FuzzContext.
 */

/** Hostile text every string field is tried with: SQL and NoSQL injection, path traversal, NUL, CRLF, markup, odd Unicode. */
export const INJECTIONS: readonly string[] = [
  "'; DROP TABLE orders; --",
  "' OR '1'='1",
  '" OR 1=1 --',
  "1; DELETE FROM items WHERE 1=1; --",
  "') UNION SELECT sql, name FROM sqlite_master --",
  "x' AND (SELECT count(*) FROM sqlite_master) > 0 --",
  "'; ATTACH DATABASE '/tmp/orderly-fuzz.db' AS pwn; --",
  "'; PRAGMA writable_schema = 1; --",
  "Robert'); DROP TABLE items;--",
  '{"$gt": ""}',
  '{"$where": "sleep(1000)"}',
  "../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "%00",
  "\u0000",
  "abc\u0000def",
  "%0d%0aSet-Cookie: fuzz=1",
  "\r\nSet-Cookie: fuzz=1",
  "<script>alert(1)</script>",
  '"><img src=x onerror=alert(1)>',
  "${jndi:ldap://127.0.0.1/a}",
  "{{7*7}}",
  "$(reboot)",
  "`id`",
  "\\",
  '"',
  "'",
  "%s%s%s%n",
  "\u202Egnp.exe",
  "\uFEFFbom",
  "🧨💥",
  "Ω≈ç√∫",
];

/** Injection text that fits an Idempotency-Key (1-128 printable ASCII characters, so no spaces). */
export const KEY_INJECTIONS: readonly string[] = [
  "';DROP/**/TABLE/**/orders;--",
  "');DELETE/**/FROM/**/idempotency_keys;--",
  "'OR'1'='1",
  '"OR"1"="1"--',
  '{"$gt":""}',
  "../../etc/passwd",
  "%00",
  "%0d%0aSet-Cookie:fuzz=1",
  "<script>alert(1)</script>",
  "${jndi:ldap://127.0.0.1/a}",
];

/** Facts of the running system that let generated values reach deep code paths. */
export interface FuzzContext {
  /** Values known to exist (seeded SKUs, order ids, customers, issued page tokens), by proto field name. */
  readonly known: Readonly<Record<string, readonly string[]>>;
  /** The callers with credentials: who may call what is decided by each RPC's access roles. */
  readonly callers: { readonly admin: Caller; readonly customers: readonly Caller[] };
  /** Adjusts a generated request before it is sent (e.g. to avoid a documented wait); identity when absent. */
  readonly refine?: (shape: RouteShape, draft: Draft) => Draft;
}

/** What one HTTP route takes, read from its binding and its request message. */
export interface RouteShape {
  /** "POST /v1/orders/{id}:cancel". */
  readonly key: string;
  readonly route: Route;
  readonly pathFields: readonly DescField[];
  readonly queryFields: readonly DescField[];
  /** The JSON body: the message it carries and the fields it must not carry, or undefined for a route without one. */
  readonly body: { readonly message: DescMessage; readonly omit: ReadonlySet<string>; readonly required: boolean } | undefined;
  /** Whether the request has a request_id, which the Idempotency-Key header fills. */
  readonly idempotent: boolean;
  /** The roles the RPC's orderly.auth.v1.access option admits. */
  readonly roles: readonly Role[];
}

/** A request being built: values before they are encoded onto the wire. */
export interface Draft {
  /** Path variables: a value to percent-encode, or (raw) text put into the path as it is. */
  readonly path: Readonly<Record<string, { readonly value: string; readonly raw?: boolean }>>;
  readonly query: readonly (readonly [string, string])[];
  /** The JSON body, or NO_BODY. */
  readonly body: JsonValue | typeof NO_BODY;
  /** Body text sent instead of the JSON body (malformed JSON). */
  readonly bodyText?: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly caller: Caller;
  /** Another HTTP method than the route's. */
  readonly method?: string;
  /** Whether something was done to the request that guarantees it is refused. */
  readonly refused?: boolean;
  /** What was done to the request to make it invalid (or odd), for humans reading a counterexample. */
  readonly labels: readonly string[];
}

/** A request as it goes on the wire. */
export interface FuzzRequest {
  readonly route: string;
  readonly method: string;
  /** Path and query, percent-encoded. */
  readonly target: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string | undefined;
  readonly caller: Caller;
  /** Whether the request must be refused (it carries a breaking mutation, another method, a body over the limit). */
  readonly refused: boolean;
  readonly labels: readonly string[];
}

/** A change to a draft that guarantees the request is refused, whatever else it carries. */
export interface Mutation {
  readonly label: string;
  readonly apply: (draft: Draft) => Draft;
}

/** Marks a draft without a body. */
export const NO_BODY: unique symbol = Symbol("no body");

const INT32 = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };
const WELL_KNOWN_STRINGS = new Set(["google.protobuf.Timestamp", "google.protobuf.Duration"]);
const MAX_DEPTH_LIMIT = 32;

function fieldNamed(message: DescMessage, name: string): DescField {
  const field = message.fields.find((f) => f.name === name || f.jsonName === name);
  if (field === undefined) throw new Error(`${message.typeName} has no field ${name}`);
  return field;
}

/** The shape of a route: its path variables, query parameters, body, idempotency and roles. */
export function routeShape(route: Route): RouteShape {
  const input = route.method.input;
  const pathNames = route.template.segments.flatMap((s) => ("variable" in s ? [s.variable] : []));
  if (pathNames.some((name) => name.includes("."))) throw new Error(`the fuzzer does not support nested path variables: ${route.template.source}`);
  const pathFields = pathNames.map((name) => fieldNamed(input, name));
  const queryFields =
    route.body === "*"
      ? []
      : input.fields.filter(
          (f) => !pathNames.includes(f.name) && f.name !== route.body && f.name !== "request_id" && f.fieldKind !== "message" && f.fieldKind !== "map",
        );
  let body: RouteShape["body"];
  if (route.body === "*") body = { message: input, omit: new Set([...pathNames, "request_id"]), required: false };
  else if (route.body !== "") {
    const field = fieldNamed(input, route.body);
    if (field.fieldKind !== "message") throw new Error(`the fuzzer supports message body fields only: ${route.template.source}`);
    body = { message: field.message, omit: new Set(), required: rulesOf(field)?.required ?? false };
  }
  return {
    key: route.label,
    route,
    pathFields,
    queryFields,
    body,
    idempotent: input.fields.some((f) => f.name === "request_id"),
    roles: hasOption(route.method, access) ? getOption(route.method, access).roles : [],
  };
}

/** The buf.validate rules of a field, if it has any. */
function rulesOf(field: DescField): FieldRules | undefined {
  return hasOption(field, fieldRulesOption) ? getOption(field, fieldRulesOption) : undefined;
}

interface StringRule {
  pattern: RegExp | undefined;
  /** The pattern as the proto writes it (RE2 syntax). */
  source: string | undefined;
  minLen: number;
  maxLen: number | undefined;
  ignoreEmpty: boolean;
}

/** A string field's rules: its pattern (as the platform RegExp the services match it with), its lengths in code points. */
export function stringRule(field: DescField): StringRule {
  const rules = rulesOf(field);
  const ignoreEmpty = rules?.ignore === Ignore.IF_ZERO_VALUE;
  if (rules?.type.case !== "string") return { pattern: undefined, source: undefined, minLen: 0, maxLen: undefined, ignoreEmpty };
  const r = rules.type.value;
  const source = isFieldSet(r, StringRulesSchema.field.pattern) ? r.pattern : undefined;
  return {
    pattern: source === undefined ? undefined : (simpleRegExp(source) ?? new RegExp(source, "u")),
    source,
    minLen: Number(r.minLen),
    maxLen: isFieldSet(r, StringRulesSchema.field.maxLen) ? Number(r.maxLen) : undefined,
    ignoreEmpty,
  };
}

/** The inclusive bounds an integer field's type and rules allow. */
function integerBounds(field: DescField): { min: bigint; max: bigint } {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  const type =
    scalar === ScalarType.INT64 || scalar === ScalarType.SINT64 || scalar === ScalarType.SFIXED64
      ? INT64
      : scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64
        ? UINT64
        : scalar === ScalarType.UINT32 || scalar === ScalarType.FIXED32
          ? { min: 0n, max: 2n ** 32n - 1n }
          : INT32;
  let { min, max } = type;
  const rules = rulesOf(field);
  if (rules?.type.case === "int32" || rules?.type.case === "int64") {
    const r = rules.type.value;
    if (r.greaterThan.case === "gte") min = BigInt(r.greaterThan.value);
    if (r.greaterThan.case === "gt") min = BigInt(r.greaterThan.value) + 1n;
    if (r.lessThan.case === "lte") max = BigInt(r.lessThan.value);
    if (r.lessThan.case === "lt") max = BigInt(r.lessThan.value) - 1n;
  }
  return { min, max };
}

function isInteger(field: DescField): boolean {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  return scalar !== undefined && scalar !== ScalarType.STRING && scalar !== ScalarType.BYTES && scalar !== ScalarType.BOOL && scalar !== ScalarType.DOUBLE && scalar !== ScalarType.FLOAT;
}

function is64(field: DescField): boolean {
  const scalar = field.fieldKind === "scalar" || field.fieldKind === "list" ? field.scalar : undefined;
  return scalar === ScalarType.INT64 || scalar === ScalarType.SINT64 || scalar === ScalarType.SFIXED64 || scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64;
}

function repeatedRule(field: DescField): { minItems: number; maxItems: number | undefined } {
  const rules = rulesOf(field);
  if (rules?.type.case !== "repeated") return { minItems: 0, maxItems: undefined };
  const r = rules.type.value;
  return { minItems: Number(r.minItems), maxItems: isFieldSet(r, RepeatedRulesSchema.field.maxItems) ? Number(r.maxItems) : undefined };
}

/** The key that must be unique across a list's elements, from a message-level CEL rule `this.<list>.map(x, x.<key>).unique()`. */
function uniqueKeyOf(message: DescMessage, list: DescField): DescField | undefined {
  if (list.fieldKind !== "list" || list.listKind !== "message" || !hasOption(message, messageRulesOption)) return undefined;
  for (const rule of getOption(message, messageRulesOption).cel) {
    const match = /^this\.(\w+)\.map\((\w+),\s*\2\.(\w+)\)\.unique\(\)$/.exec(rule.expression.trim());
    if (match && match[1] === list.name) return fieldNamed(list.message, match[3]!);
  }
  return undefined;
}

const wellFormed = (text: string) => text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");

/** JSON nested `depth` arrays and objects deep. */
function deepJson(depth: number): JsonValue {
  let value: JsonValue = "bottom";
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { nested: value };
  return value;
}

/** Strings no field should trust: injections, numbers in disguise, control characters, odd Unicode, very long text. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INJECTIONS) },
  { weight: 2, arbitrary: fc.constantFrom("", " ", "null", "true", "0", "-1", "1.5", "1e3", "0x10", " 5", "NaN", "Infinity", "99999999999999999999", "-9223372036854775809") },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 8 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(
      // 20,000 characters: longer than the gateway's header limit once in a path, a query or a header.
      fc.oneof({ weight: 9, arbitrary: fc.constantFrom(65, 129, 201, 1000) }, { weight: 1, arbitrary: fc.constant(20_000) }),
      fc.constantFrom("x", "é", "🧨", "'", "A"),
    ).map(([n, c]) => c.repeat(n)),
  },
);

/** JSON values of every type, for any field: wrong types, extreme numbers, hostile strings, nesting. */
const hostileJson: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<JsonValue>(null, true, false, [], {}, { $gt: "" }, { $ne: null }, [1, "2", null], 0, -1, 1.5, -0.5, 1e308, -1e308, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 2, 1e-7) },
  { weight: 4, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue> },
  { weight: 1, arbitrary: fc.integer({ min: 3, max: 45 }).map(deepJson) },
);

/** A plausible value of a field (its rules kept; known values of the system preferred). */
function validValue(field: DescField, ctx: FuzzContext, depth = 0): fc.Arbitrary<JsonValue> {
  if (field.fieldKind === "list") {
    const element = validSingle(field, ctx, depth);
    const { minItems, maxItems } = repeatedRule(field);
    const constraints = { minLength: Math.max(minItems, 0), maxLength: Math.min(maxItems ?? 3, Math.max(minItems, 3)) };
    const key = field.parent ? uniqueKeyOf(field.parent, field) : undefined;
    return key ? fc.uniqueArray(element, { ...constraints, selector: (v) => (v as JsonObject)[key.jsonName] }) : fc.array(element, constraints);
  }
  if (field.fieldKind === "map") return fc.constant({});
  return validSingle(field, ctx, depth);
}

function validSingle(field: DescField, ctx: FuzzContext, depth: number): fc.Arbitrary<JsonValue> {
  if (field.message !== undefined) {
    if (field.message.typeName === "google.protobuf.Timestamp") return fc.date({ min: new Date(0), max: new Date("2100-01-01"), noInvalidDate: true }).map((d) => d.toISOString());
    if (field.message.typeName === "google.protobuf.Duration") return fc.nat(1000).map((s) => `${s}s`);
    return messageValue(field.message, ctx, "valid", new Set(), depth + 1);
  }
  if (field.enum !== undefined) return fc.constantFrom(...field.enum.values.map((v) => v.name));
  const known = ctx.known[field.name] ?? [];
  let generated: fc.Arbitrary<JsonValue>;
  switch (field.scalar) {
    case ScalarType.STRING: {
      const rule = stringRule(field);
      const base = rule.pattern ? fc.stringMatching(rule.pattern) : fc.string({ minLength: Math.max(rule.minLen, 0), maxLength: Math.min(rule.maxLen ?? 40, 40) });
      generated = rule.ignoreEmpty ? fc.oneof(fc.constant(""), base) : base;
      break;
    }
    case ScalarType.BOOL:
      generated = fc.boolean();
      break;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      generated = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 });
      break;
    case ScalarType.BYTES:
      generated = fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b).toString("base64"));
      break;
    default: {
      const { min, max } = integerBounds(field);
      // Small values near zero (or near the lower bound when zero is not allowed), now and then any allowed one.
      const low = min <= 0n && max >= 0n ? 0n : min;
      const small = fc.bigInt({ min: low, max: max < low + 10n ? max : low + 10n });
      const any = fc.bigInt({ min, max });
      const value = fc.oneof({ weight: 3, arbitrary: small }, { weight: 1, arbitrary: any });
      // proto3 JSON: 64-bit integers as strings (numbers accepted too), 32-bit as numbers (strings accepted too).
      generated = is64(field)
        ? fc.oneof({ weight: 4, arbitrary: value.map(String) }, { weight: 1, arbitrary: small.map(Number) })
        : fc.oneof({ weight: 4, arbitrary: value.map(Number) }, { weight: 1, arbitrary: small.map(String) });
    }
  }
  return known.length > 0 ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: generated }) : generated;
}

/** A JSON key that names no field of the message (neither its JSON name nor its proto name). */
function unknownKey(message: DescMessage): fc.Arbitrary<string> {
  const names = new Set(message.fields.flatMap((f) => [f.name, f.jsonName]));
  return fc
    .oneof(fc.constantFrom("discount", "isAdmin", "$where", "__proto__", "constructor", "@type", "role", "price", ""), hostileString, fc.string({ maxLength: 12 }))
    .filter((key) => !names.has(key));
}

/**
 * A JSON object of a message. "valid": fields with rules always, the rest
 * now and then, each value plausible. "mixed": each field absent,
 * plausible or hostile, and now and then unknown keys.
 */
function messageValue(message: DescMessage, ctx: FuzzContext, mode: "valid" | "mixed", omit: ReadonlySet<string>, depth = 0): fc.Arbitrary<JsonObject> {
  const fields = message.fields.filter((f) => !omit.has(f.name));
  const entries = fields.map((field) => {
    const valid = depth > 3 ? fc.constant(undefined) : validValue(field, ctx, depth);
    const hasRules = rulesOf(field) !== undefined;
    const optional = field.fieldKind === "scalar" && field.proto.proto3Optional;
    const value: fc.Arbitrary<JsonValue | undefined> =
      mode === "valid"
        ? hasRules && !optional
          ? valid
          : fc.oneof({ weight: optional ? 1 : 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: valid })
        : fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 6, arbitrary: valid }, { weight: 2, arbitrary: hostileJson });
    return value.map((v) => [field.jsonName, v] as const);
  });
  const extra: fc.Arbitrary<[string, JsonValue][]> =
    mode === "mixed" ? fc.oneof({ weight: 9, arbitrary: fc.constant<[string, JsonValue][]>([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(unknownKey(message), hostileJson), { minLength: 1, maxLength: 2 }) }) : fc.constant([]);
  return fc.tuple(fc.tuple(...entries), extra).map(([known, unknown]) => {
    const object: JsonObject = {};
    for (const [key, value] of known) if (value !== undefined) object[key] = value;
    for (const [key, value] of unknown) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
    return object;
  });
}

/** Copies JSON and sets a value at a path of keys, creating objects and arrays on the way. */
export function setAt(json: JsonValue | typeof NO_BODY, keys: readonly (string | number)[], value: JsonValue | undefined): JsonValue {
  const root: JsonValue = json === NO_BODY || typeof json !== "object" || json === null ? {} : structuredClone(json);
  let target = root as JsonObject | JsonValue[];
  keys.forEach((key, i) => {
    const last = i === keys.length - 1;
    const record = target as Record<string | number, JsonValue>;
    if (last) {
      if (value === undefined) delete record[key];
      else Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
      return;
    }
    const nextIsIndex = typeof keys[i + 1] === "number";
    let next = record[key];
    if (nextIsIndex ? !Array.isArray(next) : typeof next !== "object" || next === null || Array.isArray(next)) {
      next = nextIsIndex ? [] : {};
      record[key] = next;
    }
    if (nextIsIndex) {
      const array = next as JsonValue[];
      while (array.length <= (keys[i + 1] as number)) array.push({});
    }
    target = next as JsonObject | JsonValue[];
  });
  return root;
}

/** A field reachable in a body, with the JSON keys leading to it (list elements at index 0). */
interface BodyField {
  readonly keys: readonly (string | number)[];
  readonly field: DescField;
  readonly parent: DescMessage;
}

function bodyFields(message: DescMessage, omit: ReadonlySet<string>, prefix: readonly (string | number)[] = [], depth = 0): BodyField[] {
  const found: BodyField[] = [];
  for (const field of message.fields) {
    if (omit.has(field.name)) continue;
    const keys = [...prefix, field.jsonName];
    found.push({ keys, field, parent: message });
    if (depth >= 2 || field.message === undefined || WELL_KNOWN_STRINGS.has(field.message.typeName)) continue;
    if (field.fieldKind === "message") found.push(...bodyFields(field.message, new Set(), keys, depth + 1));
    if (field.fieldKind === "list") found.push(...bodyFields(field.message, new Set(), [...keys, 0], depth + 1));
  }
  return found;
}

const label = (keys: readonly (string | number)[]) => keys.map((k) => (typeof k === "number" ? `[${k}]` : k)).join(".").replace(/\.\[/g, "[");

/** JSON values of the wrong type for a field (never null, which proto3 JSON reads as "unset"). */
function wrongTypes(field: DescField): fc.Arbitrary<JsonValue> {
  if (field.fieldKind === "list") return fc.constantFrom<JsonValue>("x", 5, true, { $gt: "" });
  if (field.fieldKind === "map") return fc.constantFrom<JsonValue>("x", 5, true, [1]);
  if (field.message !== undefined) {
    return WELL_KNOWN_STRINGS.has(field.message.typeName) ? fc.constantFrom<JsonValue>("not a time", "yesterday", 5, true, {}, []) : fc.constantFrom<JsonValue>("x", 5, true, [], ["x"]);
  }
  if (field.enum !== undefined) return fc.constantFrom<JsonValue>("NOT_A_VALUE", "", true, 1.5, {}, []);
  switch (field.scalar) {
    case ScalarType.STRING:
      return fc.constantFrom<JsonValue>(5, 1.5, true, false, [], ["a"], {}, { $gt: "" });
    case ScalarType.BOOL:
      return fc.constantFrom<JsonValue>("yes", 1, [], {});
    case ScalarType.BYTES:
      return fc.constantFrom<JsonValue>(5, true, [], {}, "not base64!!");
    default:
      return is64(field)
        ? fc.constantFrom<JsonValue>(true, false, [], {}, "x", "1.5", 1.5, "99999999999999999999", "-99999999999999999999", { $gt: "" })
        : fc.constantFrom<JsonValue>(true, false, [], {}, "x", "one", 1.5, -0.5, 2 ** 31, -(2 ** 31) - 1, 1e21, { $gt: "" });
  }
}

/** Strings that break a string rule (as a path or query value they are the whole value). */
function stringsBreaking(rule: StringRule): fc.Arbitrary<string> | undefined {
  const candidates: fc.Arbitrary<string>[] = [];
  if (rule.pattern) {
    const pattern = rule.pattern;
    candidates.push(
      fc
        .oneof(hostileString, fc.constantFrom("A".repeat(65), "a".repeat(129), "1".repeat(300), "has space", "semi;colon", "slash/slash", "quote'"))
        .filter((s) => !pattern.test(s) && !(rule.ignoreEmpty && s === "")),
    );
  }
  if (rule.minLen > 0 && !rule.ignoreEmpty) candidates.push(fc.constant(""));
  if (rule.maxLen !== undefined) candidates.push(fc.constantFrom("x", "é", "🧨").map((c) => c.repeat(rule.maxLen! + 1)));
  return candidates.length > 0 ? fc.oneof(...candidates) : undefined;
}

/** Numbers outside an integer field's rules (inside or outside its type's range), as JSON values. */
function integersBreaking(field: DescField): fc.Arbitrary<JsonValue> | undefined {
  const { min, max } = integerBounds(field);
  const type = is64(field) ? INT64 : INT32;
  const values: bigint[] = [];
  if (min > type.min) values.push(min - 1n, min - 2n, min - 1000n);
  if (max < type.max) values.push(max + 1n, max + 2n, max + 1000n);
  if (values.length === 0) return undefined;
  return fc.constantFrom(...values).map((v): JsonValue => (is64(field) ? String(v) : Number(v)));
}

/** Values guaranteed to break a field's rules or its JSON type, for a JSON body. */
function breakingJson(field: DescField): fc.Arbitrary<JsonValue> {
  const choices: fc.Arbitrary<JsonValue>[] = [wrongTypes(field)];
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) {
    const strings = stringsBreaking(stringRule(field));
    if (strings) choices.push(strings, strings);
  }
  if (field.fieldKind === "scalar" && isInteger(field)) {
    const numbers = integersBreaking(field);
    if (numbers) choices.push(numbers, numbers);
  }
  return fc.oneof(...choices);
}

/** Text values guaranteed to break a path or query field (its rules, or its type when it is not a string). */
function breakingText(field: DescField): fc.Arbitrary<string> | undefined {
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) return stringsBreaking(stringRule(field));
  if (field.fieldKind === "scalar" && isInteger(field)) {
    const numbers = integersBreaking(field);
    const wrong = fc.constantFrom("x", "one", "1.5", "1e400", "99999999999999999999999", "true", "[]", "{}", ...INJECTIONS.filter((s) => !/^\s*-?\d+\s*$/.test(s)));
    return numbers ? fc.oneof(numbers.map(String), wrong) : wrong;
  }
  return undefined;
}

/** Callers who may not call an RPC: none, broken or forged credentials, and (when the roles exclude customers) a customer. */
function refusedCallers(shape: RouteShape, ctx: FuzzContext): fc.Arbitrary<Mutation> {
  const noCredentials: Mutation = { label: "no credentials", apply: (d) => ({ ...d, caller: null, headers: d.headers.filter(([n]) => n.toLowerCase() !== "authorization") }) };
  const badHeader = fc
    .constantFrom("Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiIsInJvbGVzIjpbImFkbWluIl19.", "bearer' OR 1=1 --", "Token x", "Bearer ../../etc/passwd")
    .map((value): Mutation => ({
      label: `Authorization: ${value.slice(0, 40)}`,
      apply: (d) => ({ ...d, caller: null, headers: [...d.headers.filter(([n]) => n.toLowerCase() !== "authorization"), ["Authorization", value]] }),
    }));
  const choices: fc.Arbitrary<Mutation>[] = [fc.constant(noCredentials), badHeader];
  if (!shape.roles.includes(Role.CUSTOMER) && ctx.callers.customers.length > 0) {
    choices.push(fc.constantFrom(...ctx.callers.customers).map((caller): Mutation => ({ label: `caller ${String(caller)} (role not allowed)`, apply: (d) => ({ ...d, caller }) })));
  }
  return fc.oneof(...choices);
}

/** Header values the gateway must refuse. */
const invalidTimeouts = fc.constantFrom("0", "000", "-1", "1.5", "abc", "", "1e3", "0x10", "5000ms", "+5000", "１２３", ...INJECTIONS.filter((s) => !/[\r\n\u0000-\u001f]/.test(s)));
const invalidKeys = fc.oneof(
  fc.constantFrom("", "has space", "k".repeat(129), "é", "a\tb", "'; DROP TABLE orders; --", '" OR 1=1 --', "<script> alert(1) </script>"),
  fc.stringMatching(/^[!-~]{1,20} [!-~]{1,20}$/),
);

function withHeader(d: Draft, name: string, value: string): Draft {
  return { ...d, headers: [...d.headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase()), [name, value]] };
}

/** Invalid JSON text (never empty, never valid). */
const malformedText = fc.oneof(
  fc.constantFrom("{", "[", '"', "{'a': 1}", "{a:1}", '{"a":1,}', "nul", "tru", '{"a":1}}', "\uFEFF{}", "{}x", "[1,]", "'; DROP TABLE orders; --", "<xml/>", "--", "{\"a\":\u0000}"),
  fc.jsonValue({ maxDepth: 3 })
    .map((v) => JSON.stringify({ v }))
    .chain((text) => fc.integer({ min: 1, max: text.length - 1 }).map((cut) => text.slice(0, cut))),
);

/**
 * Every way to break a request of a route, derived from its shape: each
 * mutation alone is enough to have the request refused, whatever else the
 * request carries (a later mutation only ever breaks more), so a request
 * with at least one of them must be refused and change nothing.
 */
function breakingMutations(shape: RouteShape, ctx: FuzzContext): fc.Arbitrary<Mutation>[] {
  const mutations: fc.Arbitrary<Mutation>[] = [];
  for (const field of shape.pathFields) {
    const text = breakingText(field);
    if (text) {
      mutations.push(text.map((value): Mutation => ({ label: `path ${field.name}=${JSON.stringify(value).slice(0, 60)}`, apply: (d) => ({ ...d, path: { ...d.path, [field.name]: { value } } }) })));
    }
  }
  for (const field of shape.queryFields) {
    const text = breakingText(field);
    if (text) {
      mutations.push(
        text.map((value): Mutation => ({
          label: `query ${field.jsonName}=${JSON.stringify(value).slice(0, 60)}`,
          apply: (d) => ({ ...d, query: [...d.query.filter(([k]) => k !== field.jsonName && k !== field.name), [field.jsonName, value]] }),
        })),
      );
    }
  }
  const queryNames = new Set(shape.queryFields.flatMap((f) => [f.name, f.jsonName]));
  mutations.push(
    fc
      .tuple(fc.oneof(fc.constantFrom("limit", "offset", "admin", "$where", "filter", "debug"), hostileString.filter((s) => s !== "")), hostileString)
      .filter(([name]) => !queryNames.has(name) && !(shape.route.body !== "*" && shape.route.method.input.fields.some((f) => f.name === name || f.jsonName === name)))
      .map(([name, value]): Mutation => ({ label: `unknown query ${JSON.stringify(name).slice(0, 40)}`, apply: (d) => ({ ...d, query: [...d.query, [name, value]] }) })),
  );
  mutations.push(refusedCallers(shape, ctx));
  mutations.push(invalidTimeouts.map((value): Mutation => ({ label: `X-Request-Timeout: ${JSON.stringify(value)}`, apply: (d) => withHeader(d, "X-Request-Timeout", value) })));
  // Only the routes that take one read it (elsewhere it is ignored, however malformed).
  if (shape.idempotent) mutations.push(invalidKeys.map((value): Mutation => ({ label: `Idempotency-Key: ${JSON.stringify(value).slice(0, 40)}`, apply: (d) => withHeader(d, "Idempotency-Key", value) })));
  const body = shape.body;
  if (body === undefined) return mutations;
  const { message, omit } = body;
  const withBody = (d: Draft, json: JsonValue): Draft => ({ ...d, body: json });
  for (const { keys, field, parent } of bodyFields(message, omit)) {
    mutations.push(breakingJson(field).map((value): Mutation => ({ label: `${label(keys)}=${JSON.stringify(value).slice(0, 60)}`, apply: (d) => withBody(d, setAt(d.body, keys, value)) })));
    if (field.fieldKind === "list") {
      const { minItems, maxItems } = repeatedRule(field);
      if (minItems > 0) mutations.push(fc.constant<Mutation>({ label: `${label(keys)}=[]`, apply: (d) => withBody(d, setAt(d.body, keys, [])) }));
      const key = uniqueKeyOf(parent, field);
      const element = validSingle(field, ctx, 1);
      if (maxItems !== undefined) {
        const many = key
          ? fc.uniqueArray(element, { minLength: maxItems + 1, maxLength: maxItems + 1, selector: (v) => (v as JsonObject)[key.jsonName] })
          : fc.array(element, { minLength: maxItems + 1, maxLength: maxItems + 1 });
        mutations.push(many.map((items): Mutation => ({ label: `${label(keys)}: ${items.length} items`, apply: (d) => withBody(d, setAt(d.body, keys, items)) })));
      }
      if (key) {
        mutations.push(
          fc.tuple(element, element).map(([a, b]): Mutation => ({
            label: `${label(keys)}: repeated ${key.jsonName}`,
            apply: (d) => withBody(d, setAt(d.body, keys, [a, { ...(b as JsonObject), [key.jsonName]: (a as JsonObject)[key.jsonName] ?? "" }])),
          })),
        );
      }
    }
    if (field.fieldKind === "message" && !WELL_KNOWN_STRINGS.has(field.message.typeName)) {
      mutations.push(unknownKey(field.message).map((name): Mutation => ({ label: `unknown field ${label([...keys, name])}`, apply: (d) => withBody(d, setAt(d.body, [...keys, name], 1)) })));
    }
    if (field.fieldKind === "list" && field.listKind === "message") {
      mutations.push(unknownKey(field.message).map((name): Mutation => ({ label: `unknown field ${label([...keys, 0, name])}`, apply: (d) => withBody(d, setAt(d.body, [...keys, 0, name], "x")) })));
    }
  }
  mutations.push(fc.tuple(unknownKey(message), hostileJson).map(([name, value]): Mutation => ({ label: `unknown field ${JSON.stringify(name).slice(0, 40)}`, apply: (d) => withBody(d, setAt(d.body, [name], value)) })));
  for (const field of shape.pathFields) {
    // The body must not set a field the path sets, to another value.
    if (shape.route.body === "*") {
      mutations.push(fc.constant<Mutation>({ label: `body ${field.jsonName} differs from the path`, apply: (d) => withBody(d, setAt(d.body, [field.jsonName], `${d.path[field.name]?.value ?? ""}-other`)) }));
    }
  }
  if (body.required) mutations.push(fc.constant<Mutation>({ label: "no body (required)", apply: (d) => ({ ...d, body: NO_BODY, bodyText: undefined }) }));
  mutations.push(fc.constantFrom<JsonValue>([], [1], "x", 5, true, null).map((value): Mutation => ({ label: `body ${JSON.stringify(value)}`, apply: (d) => ({ ...d, body: value }) })));
  mutations.push(malformedText.map((text): Mutation => ({ label: `malformed JSON ${JSON.stringify(text).slice(0, 40)}`, apply: (d) => ({ ...d, bodyText: text }) })));
  mutations.push(fc.integer({ min: MAX_DEPTH_LIMIT + 1, max: 200 }).map((depth): Mutation => ({ label: `nesting ${depth} deep`, apply: (d) => withBody(d, setAt(d.body, ["deep"], deepJson(depth))) })));
  return mutations;
}

/** A plausible request of a route: every rule kept, known values preferred, the first caller its roles admit. */
function validDraft(shape: RouteShape, ctx: FuzzContext): fc.Arbitrary<Draft> {
  const path = fc.tuple(...shape.pathFields.map((f) => validValue(f, ctx).map((v) => [f.name, { value: String(v) }] as const)));
  const body = shape.body ? messageValue(shape.body.message, ctx, "valid", shape.body.omit) : fc.constant(NO_BODY);
  const caller = shape.roles.includes(Role.ADMIN) || ctx.callers.customers.length === 0 ? ctx.callers.admin : ctx.callers.customers[0]!;
  return fc.tuple(path, body).map(([p, b]): Draft => ({ path: Object.fromEntries(p), query: [], body: b, headers: [], caller, labels: [] }));
}

/** A request of a route that must be refused: a plausible one with one to three breaking mutations (and domain ones from the caller). */
export function invalidRequest(shape: RouteShape, ctx: FuzzContext, domain: readonly fc.Arbitrary<Mutation>[] = []): fc.Arbitrary<FuzzRequest> {
  const generic = breakingMutations(shape, ctx);
  const mutation = fc.oneof(
    ...generic.map((arbitrary) => ({ weight: 2, arbitrary })),
    ...domain.map((arbitrary) => ({ weight: Math.max(2, Math.round((2 * generic.length) / Math.max(domain.length, 1) / 3)), arbitrary })),
  );
  return fc.tuple(validDraft(shape, ctx), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([draft, mutations]) =>
    render(shape, { ...mutations.reduce((d, m) => ({ ...m.apply(d), labels: [...d.labels, m.label] }), draft), refused: true }, ctx),
  );
}

/** Header values of every kind: plausible ones, refused ones, hostile ones. */
function noiseHeaders(shape: RouteShape): fc.Arbitrary<[string, string][]> {
  const printable = fc.oneof(fc.stringMatching(/^[!-~]{1,128}$/), fc.constantFrom(...KEY_INJECTIONS));
  const key = fc.oneof({ weight: 4, arbitrary: printable }, { weight: 1, arbitrary: invalidKeys });
  // Budgets big enough for a healthy system: a smaller one may legitimately end in 504.
  // Any number of digits is a budget (capped): a 10- or 40-digit one too.
  const timeout = fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 5000, max: 999_999_999 }).map(String) },
    { weight: 1, arbitrary: fc.constantFrom("000010000", "9999999999", "9".repeat(40)) },
    { weight: 2, arbitrary: invalidTimeouts },
  );
  const requestId = fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), fc.constantFrom(...KEY_INJECTIONS), hostileString.map(headerSafe));
  const contentType = fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "multipart/form-data; boundary=x", "application/xml");
  const reserved = new Set(["host", "content-length", "transfer-encoding", "connection", "authorization", "expect", "x-request-timeout", "idempotency-key", "content-type", "upgrade", "te", "trailer"]);
  const extraName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/).filter((n) => !reserved.has(n.toLowerCase()));
  const optional = <T>(arb: fc.Arbitrary<T>, weight: number) => fc.oneof({ weight: 10 - weight, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });
  return fc
    .record({
      key: optional(key, shape.idempotent ? 5 : 2),
      timeout: optional(timeout, 2),
      requestId: optional(requestId, 2),
      contentType: optional(contentType, 1),
      extra: optional(fc.tuple(extraName, hostileString.map(headerSafe)), 1),
      injected: optional(fc.constantFrom("X-Injected: fuzz", "Set-Cookie: fuzz=1"), 1),
    })
    .map(({ key, timeout, requestId, contentType, extra, injected }) => {
      const headers: [string, string][] = [];
      if (key !== undefined) headers.push(["Idempotency-Key", key]);
      if (timeout !== undefined) headers.push(["X-Request-Timeout", timeout]);
      if (requestId !== undefined) headers.push(["X-Request-Id", requestId]);
      if (contentType !== undefined) headers.push(["Content-Type", contentType]);
      if (extra !== undefined) headers.push(extra);
      // CRLF injection: on the wire the text after CRLF is a header of its own, which must never come back.
      if (injected !== undefined && headers.length > 0) headers[0] = [headers[0]![0], `${headers[0]![1]}\r\n${injected}`];
      return headers;
    });
}

/** A header value HTTP can carry: no control characters (a request with them never reaches the gateway's handler). */
function headerSafe(value: string): string {
  return value.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, "");
}

/** Path text that is not plain percent-encoding: traversal, stray or broken escapes, encoded separators. */
const rawSegments = fc.constantFrom("..", ".", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "%", "%zz", "%E0%A4%A", "%C0%AF", "%2F", "a%2Fb", "x;y=1", "%27%3B%20DROP%20TABLE%20orders%3B%20--", "%0d%0aSet-Cookie:%20fuzz=1", "%F0%9F%A7%A8", "*", "~", "a+b");

/**
 * Any request of a route: path variables, query parameters and body fields
 * each absent, plausible or hostile; unknown fields; headers of every
 * kind; any caller; and now and then a mutation that breaks it for sure.
 */
export function arbitraryRequest(shape: RouteShape, ctx: FuzzContext): fc.Arbitrary<FuzzRequest> {
  const pathValue = (field: DescField) =>
    fc.oneof(
      { weight: 6, arbitrary: validValue(field, ctx).map((v) => ({ value: String(v) })) },
      { weight: 3, arbitrary: hostileJson.map((v) => ({ value: typeof v === "string" ? v : JSON.stringify(v) })) },
      { weight: 1, arbitrary: rawSegments.map((value) => ({ value, raw: true })) },
    );
  const path = fc.tuple(...shape.pathFields.map((f) => pathValue(f).map((v) => [f.name, v] as const)));
  const queryValue = (field: DescField): fc.Arbitrary<string[]> => {
    const one = fc.oneof(
      { weight: 6, arbitrary: validValue(field, ctx).map((v) => (typeof v === "string" ? v : JSON.stringify(v))) },
      { weight: 3, arbitrary: hostileJson.map((v) => (typeof v === "string" ? v : JSON.stringify(v))) },
    );
    return fc.oneof({ weight: 9, arbitrary: one.map((v) => [v]) }, { weight: 1, arbitrary: fc.array(one, { minLength: 2, maxLength: 3 }) });
  };
  const query = fc.tuple(
    ...shape.queryFields.map((f) =>
      // The transcoder takes a field's proto name as well as its JSON name.
      fc
        .tuple(fc.oneof({ weight: 1, arbitrary: fc.constant([] as string[]) }, { weight: 1, arbitrary: queryValue(f) }), fc.oneof({ weight: 4, arbitrary: fc.constant(f.jsonName) }, { weight: 1, arbitrary: fc.constant(f.name) }))
        .map(([values, name]) => values.map((v) => [name, v] as const)),
    ),
  );
  // Half the bodies keep every rule, so that requests get past validation into the handlers.
  const body: fc.Arbitrary<JsonValue | typeof NO_BODY> = shape.body
    ? fc.oneof(
        { weight: 1, arbitrary: fc.constant(NO_BODY) },
        { weight: 6, arbitrary: messageValue(shape.body.message, ctx, "valid", shape.body.omit) },
        { weight: 6, arbitrary: messageValue(shape.body.message, ctx, "mixed", shape.body.omit) },
        { weight: 1, arbitrary: hostileJson },
      )
    : fc.oneof({ weight: 19, arbitrary: fc.constant(NO_BODY) }, { weight: 1, arbitrary: hostileJson.filter((v) => JSON.stringify(v).length < 10_000) });
  const caller = fc.oneof(
    { weight: 6, arbitrary: fc.constant(ctx.callers.admin) },
    ...ctx.callers.customers.map((c) => ({ weight: 2, arbitrary: fc.constant(c) })),
    { weight: 1, arbitrary: fc.constant<Caller>(null) },
    { weight: 1, arbitrary: hostileString.map((token): Caller => ({ token: headerSafe(token) })) },
  );
  const breaking = breakingMutations(shape, ctx);
  const mutations = fc.oneof({ weight: 3, arbitrary: fc.constant([] as Mutation[]) }, { weight: 1, arbitrary: fc.array(fc.oneof(...breaking), { minLength: 1, maxLength: 2 }) });
  const huge = fc.oneof({ weight: 199, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(shape.body !== undefined) });
  // HEAD is GET without the body, so it is no other method for a GET route.
  const otherMethods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"].filter((m) => m !== shape.route.httpMethod && !(m === "HEAD" && shape.route.httpMethod === "GET"));
  const method = fc.oneof({ weight: 24, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(...otherMethods) });
  return fc.tuple(path, query, body, noiseHeaders(shape), caller, mutations, huge, method).map(([p, q, b, headers, who, ms, tooLarge, m]) => {
    let draft: Draft = { path: Object.fromEntries(p), query: q.flat(), body: b, headers, caller: who, labels: m === undefined ? [] : [`method ${m}`], ...(m === undefined ? {} : { method: m }) };
    draft = ms.reduce((d, m) => ({ ...m.apply(d), labels: [...d.labels, m.label] }), draft);
    if (tooLarge) draft = { ...draft, bodyText: JSON.stringify({ pad: "x".repeat(1024 * 1024 + 10) }), labels: [...draft.labels, "body over 1 MiB"] };
    // Another method finds no route, or a route whose path variable then breaks its rule.
    return render(shape, { ...draft, refused: ms.length > 0 || tooLarge || m !== undefined }, ctx);
  });
}

/** Encodes a draft onto the wire: the path template filled in, the query string, the body text. */
export function render(shape: RouteShape, draft: Draft, ctx?: FuzzContext): FuzzRequest {
  const d = ctx?.refine ? ctx.refine(shape, draft) : draft;
  const { template } = shape.route;
  const segments = template.segments.map((s) => {
    if ("literal" in s) return s.literal;
    const value = d.path[s.variable] ?? { value: "" };
    return value.raw ? value.value : encodeURIComponent(wellFormed(value.value));
  });
  const query = d.query.map(([k, v]) => `${encodeURIComponent(wellFormed(k))}=${encodeURIComponent(wellFormed(v))}`).join("&");
  const target = `/${segments.join("/")}${template.verb === undefined ? "" : `:${template.verb}`}${query === "" ? "" : `?${query}`}`;
  const body = d.bodyText ?? (d.body === NO_BODY ? undefined : JSON.stringify(d.body));
  const hasType = d.headers.some(([n]) => n.toLowerCase() === "content-type");
  const headers = body !== undefined && !hasType ? [...d.headers, ["Content-Type", "application/json"] as const] : d.headers;
  const request: FuzzRequest = { route: shape.key, method: d.method ?? shape.route.httpMethod, target, headers, body, caller: d.caller, refused: d.refused ?? false, labels: d.labels };
  // A counterexample prints as one readable request, however long its values are.
  return Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) });
}

const clip = (text: string, max = 300) => (text.length <= max ? text : `${text.slice(0, max)}…(${text.length} chars)`);

/** One request, as a human reads it in a failure: method, target, caller, headers, body and what was done to it, long values clipped. */
export function describeRequest(request: FuzzRequest): string {
  return [
    `${request.method} ${clip(request.target)}`,
    `caller: ${clip(JSON.stringify(request.caller), 80)}`,
    `headers: ${clip(JSON.stringify(request.headers))}`,
    `body: ${request.body === undefined ? "(none)" : clip(JSON.stringify(request.body))}`,
    `labels: ${clip(request.labels.join("; "))}${request.refused ? " (must be refused)" : ""}`,
  ].join("\n  ");
}
