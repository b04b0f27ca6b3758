import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { RE2JS } from "@bufbuild/re2";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { connect as connectTcp } from "node:net";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { routesOf } from "../../gateway/routes/index.js";
import { InventoryService, RestockRequestSchema } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { httpStatusFor, isReason, reasons } from "../../shared/errors/index.js";
import type { DevTokens } from "../../scripts/dev-security.js";
import {
  INJECTIONS,
  KEY_INJECTIONS,
  NO_BODY,
  arbitraryRequest,
  describeRequest,
  invalidRequest,
  render,
  routeShape,
  setAt,
  stringRule,
  type Draft,
  type FuzzContext,
  type FuzzRequest,
  type Mutation,
  type RouteShape,
} from "../helpers/fuzz-inputs.js";
import { openReadOnly, streamCounts } from "../helpers/models.js";
import { waitFor } from "../helpers/processes.js";
import { authorization, startSystem, type System } from "../helpers/system.js";
import { waitForAllApplied, waitForConvergence } from "./events-helpers.js";

/*
 * The fuzz suite of the HTTP API, driven by the protos: every route of the
 * services' google.api.http annotations (the same ones the gateway and
 * /openapi.json are built from) gets generated requests from its request
 * message, its buf.validate rules and its access roles.
 *
 *  A. any input, ≥ 1,000 per route: never a 5xx, every 4xx a google.rpc.Status
 *     with a known reason; reads change no database.
 *  B. inputs that must be refused, ≥ 1,000 per write route: every one a 4xx
 *     with a reason, and no database (schema, rows) nor stream changed.
 *  C. injection text where free text is allowed (a restock's name, the
 *     Idempotency-Key): stored and read back as sent, or, where the name's
 *     rule refuses it (control characters, bidirectional overrides), refused
 *     with 400 VALIDATION_FAILED; schemas unchanged; rows added only as the
 *     requests should add them.
 *
 * Requests go one at a time over a raw socket, so that headers carry what
 * a client can put on the wire (CRLF included) and nothing is normalised
 * on the way. Seeds are fixed: a failure prints its seed and request.
 */

const RUNS = 1000;
const SEED = 20_250_611;
const TEN_MINUTES = 10 * 60_000;
const DB_FILES = ["inventory.db", "order.db", "query.db"] as const;

const routes = routesOf([OrderService, InventoryService, QueryService]);
const shapes = routes.map(routeShape);
const isRead = (shape: RouteShape) => shape.route.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
const reads = shapes.filter(isRead);
const writes = shapes.filter((s) => !isRead(s));

/** What came back on the wire. */
interface WireResponse {
  status: number;
  headers: Map<string, string[]>;
  text: string;
}

/** Sends one request on its own connection, exactly as given, and reads the whole response. */
function send(port: number, tokens: DevTokens, request: FuzzRequest): Promise<WireResponse> {
  const lines = [`${request.method} ${request.target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Connection: close"];
  if (request.caller !== null) lines.push(`Authorization: ${authorization(tokens, request.caller).authorization}`);
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  const body = request.body === undefined ? undefined : Buffer.from(request.body, "utf8");
  if (body !== undefined || request.method !== "GET") lines.push(`Content-Length: ${body?.length ?? 0}`);
  const head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "utf8");
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(60_000, () => socket.destroy(new Error(`no response within 60 s to ${request.method} ${request.target.slice(0, 200)}`)));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    let failure: Error | undefined;
    // The gateway may answer (413, 400) and close before it has read a large body: what it sent still counts.
    socket.on("error", (error) => (failure = error));
    socket.on("close", () => {
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf("\r\n\r\n");
      if (end < 0) return reject(failure ?? new Error(`no HTTP response (${raw.length} bytes)`));
      const [statusLine, ...headerLines] = raw.subarray(0, end).toString("latin1").split("\r\n");
      const headers = new Map<string, string[]>();
      for (const line of headerLines) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
      }
      const length = Number(headers.get("content-length")?.[0] ?? raw.length);
      resolve({ status: Number(statusLine!.split(" ")[1]), headers, text: raw.subarray(end + 4, end + 4 + length).toString("utf8") });
    });
    socket.write(body === undefined ? head : Buffer.concat([head, body]));
  });
}

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";

/**
 * What is wrong with a response, or undefined: a 5xx, an error without a
 * known reason (or with a reason that does not match its code and status),
 * a leak of internals, a reflected header, a documented header missing.
 */
function problemWith(request: FuzzRequest, response: WireResponse, expectRefusal: boolean): string | undefined {
  const { status } = response;
  if (status >= 500) return `a ${status}`;
  if (status < 200 || (status >= 300 && status < 400)) return `an unexpected status ${status}`;
  if (expectRefusal && status < 400) return `accepted (${status}) a request that must be refused`;
  for (const header of ["set-cookie", "x-injected"]) if (response.headers.has(header)) return `the response carries the injected header ${header}`;
  const documented: Record<number, string> = { 401: "www-authenticate", 405: "allow", 429: "retry-after", 503: "retry-after" };
  if (documented[status] !== undefined && !response.headers.has(documented[status]!)) return `a ${status} without ${documented[status]}`;
  // The id is echoed only when it is well-formed (responses written before the handler, such as 431, carry none).
  const requestId = response.headers.get("x-request-id")?.[0];
  if (requestId !== undefined && !/^[A-Za-z0-9._:-]{1,128}$/.test(requestId)) return `x-request-id ${JSON.stringify(requestId)} is not one the gateway would issue`;
  // A response to HEAD has no body (its status and headers are checked above): GET routes answer it as GET.
  if (request.method === "HEAD") return undefined;
  // Reflected input is only ever served as JSON, never as something a browser would render.
  const type = response.headers.get("content-type")?.[0] ?? "";
  if (!type.startsWith("application/json")) return `a body served as ${JSON.stringify(type)}: ${JSON.stringify(response.text.slice(0, 200))}`;
  let body: unknown;
  try {
    body = JSON.parse(response.text);
  } catch {
    return `a body that is not JSON: ${JSON.stringify(response.text.slice(0, 200))}`;
  }
  if (status < 400) return typeof body === "object" && body !== null ? undefined : "a success body that is not a JSON object";
  const { code, message, details } = body as { code?: unknown; message?: unknown; details?: unknown };
  if (typeof code !== "number" || code <= 0 || typeof message !== "string" || !Array.isArray(details)) return "an error body that is not a google.rpc.Status";
  const info = (details as { "@type"?: string; reason?: string }[]).find((d) => d["@type"] === ERROR_INFO);
  if (info?.reason === undefined || !isReason(info.reason)) return `an error without a known reason (${JSON.stringify(info?.reason)})`;
  if (reasons[info.reason] !== code) return `reason ${info.reason} travels with code ${reasons[info.reason]}, not ${code}`;
  if (httpStatusFor(code, info.reason) !== status) return `reason ${info.reason} (code ${code}) is HTTP ${httpStatusFor(code, info.reason)}, not ${status}`;
  if (/\bat .*\.(ts|js):\d+|node_modules|SqliteError|SQLITE_/.test(response.text)) return "an error body that leaks internals";
  return undefined;
}

/** Statuses and reasons seen per route and property, for the summary lines. */
class Tally {
  private readonly rows = new Map<string, { cases: number; refused: number; statuses: Map<number, number>; reasons: Map<string, number> }>();

  add(request: FuzzRequest, response: WireResponse): void {
    const key = request.route;
    const row = this.rows.get(key) ?? { cases: 0, refused: 0, statuses: new Map(), reasons: new Map() };
    row.cases++;
    if (request.refused) row.refused++;
    row.statuses.set(response.status, (row.statuses.get(response.status) ?? 0) + 1);
    const reason = /"reason":"([A-Z_]+)"/.exec(response.text)?.[1] ?? (request.method === "HEAD" ? "(HEAD: no body)" : "(none)");
    if (response.status >= 400) row.reasons.set(reason, (row.reasons.get(reason) ?? 0) + 1);
    this.rows.set(key, row);
  }

  cases(key: string): number {
    return this.rows.get(key)?.cases ?? 0;
  }

  line(key: string): string {
    const row = this.rows.get(key);
    if (row === undefined) return `${key}: no cases`;
    const statuses = [...row.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(" ");
    const top = [...row.reasons].sort(([, a], [, b]) => b - a).slice(0, 10).map(([r, n]) => `${r}×${n}`).join(" ");
    return `${key}: ${row.cases} cases (${row.refused} that must be refused) | ${statuses} | ${top}`;
  }
}

/** The schema SQL, the row count and a digest of the rows of every table, per database file. */
type DbState = Record<string, { schema: string[]; counts: Record<string, number>; digests: Record<string, string> }>;

function dbState(dataDir: string): DbState {
  const state: DbState = {};
  for (const file of DB_FILES) {
    const db = openReadOnly(dataDir, file);
    try {
      const objects = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all() as { type: string; name: string; sql: string | null }[];
      const counts: Record<string, number> = {};
      const digests: Record<string, string> = {};
      for (const { name } of objects.filter((o) => o.type === "table")) {
        const rows = db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).raw().all();
        counts[name] = rows.length;
        const hash = createHash("sha256");
        for (const row of rows.map((r) => JSON.stringify(r)).sort()) hash.update(row).update("\n");
        digests[name] = hash.digest("base64url");
      }
      state[file] = { schema: objects.map((o) => `${o.type} ${o.name}: ${o.sql ?? ""}`), counts, digests };
    } finally {
      db.close();
    }
  }
  return state;
}

/** Whether every durable consumer of Orderly's streams has nothing left to deliver and nothing unacknowledged. */
async function consumersIdle(system: System): Promise<boolean> {
  const nc = await connect(system.nats.connectOptions);
  try {
    const jsm = await nc.jetstreamManager();
    for (const stream of ["ORDERS", "INVENTORY"]) {
      for await (const consumer of jsm.consumers.list(stream)) if (consumer.num_pending > 0 || consumer.num_ack_pending > 0) return false;
    }
    return true;
  } finally {
    await nc.close();
  }
}

/** Waits until every event is published and applied by every consumer and the databases stop changing; returns their state and the streams' sizes. */
async function settled(system: System): Promise<{ db: DbState; streams: { ORDERS: number; INVENTORY: number } }> {
  await waitForConvergence(system);
  await waitForAllApplied(system);
  let previous = "";
  return waitFor(
    async () => {
      const state = { db: dbState(system.dataDir), streams: await streamCounts(system.nats) };
      const text = JSON.stringify(state);
      const stable = text === previous && (await consumersIdle(system));
      previous = text;
      return stable ? state : undefined;
    },
    "the databases and streams to stop changing",
    60_000,
    250,
  );
}

const bodyOf = (response: WireResponse) => JSON.parse(response.text) as Record<string, any>;

describe("fuzzing every route of the protos", () => {
  let system: System;
  let port: number;
  let ctx: FuzzContext;
  /** The databases and streams once seeded, before any fuzzing. */
  let initial: Awaited<ReturnType<typeof settled>>;
  /** The gateway's /openapi.json: every route is in it, with its query parameters, and an error's reason is one it names for the route's status. */
  let openApi: { paths: Record<string, Record<string, { parameters: { name: string; in: string }[]; responses: Record<string, { "x-orderly-reasons"?: string[] }> }>> };
  const tallyA = new Tally();
  const tallyB = new Tally();
  /** Seeded facts the domain mutations use. */
  const seed = {
    skus: ["FZ-A", "FZ-B", "FZ-C", "FZ-D", "FZ-E"],
    orderKey: "fz-order-key",
    restockKey: "fz-restock-key",
    confirmed: [] as { id: string; customerId: string; version: number }[],
    rejected: "",
  };

  async function call(method: string, target: string, options: { body?: unknown; headers?: [string, string][]; as?: FuzzRequest["caller"] } = {}): Promise<WireResponse> {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: [string, string][] = [...(options.headers ?? []), ...(body === undefined ? [] : [["Content-Type", "application/json"] as [string, string]])];
    return send(port, system.tokens, { route: "seed", method, target, headers, body, caller: options.as === undefined ? "admin" : options.as, refused: false, labels: [] });
  }

  async function seedOk(method: string, target: string, options: Parameters<typeof call>[2] = {}): Promise<Record<string, any>> {
    const response = await call(method, target, options);
    if (response.status !== 200) throw new Error(`seeding ${method} ${target} failed: ${response.status} ${response.text}`);
    return bodyOf(response);
  }

  beforeAll(async () => {
    system = await startSystem();
    port = Number(new URL(system.baseUrl).port);
    openApi = bodyOf(await call("GET", "/openapi.json")) as typeof openApi;
    for (const [i, sku] of seed.skus.entries()) await seedOk("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 100_000, unitPriceMinor: String(100 + 25 * i), name: `Fuzz ${sku}` } });
    await seedOk("POST", "/v1/inventory/FZ-EUR:restock", { body: { quantity: 1000, unitPriceMinor: "900", currencyCode: "EUR" } });
    await seedOk("POST", "/v1/inventory/FZ-SCARCE:restock", { body: { quantity: 1 } });
    await seedOk("POST", "/v1/inventory/FZ-A:restock", { body: { quantity: 7 }, headers: [["Idempotency-Key", seed.restockKey]] });
    const placed = [
      await seedOk("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FZ-A", quantity: 1 }, { sku: "FZ-B", quantity: 2 }] }, headers: [["Idempotency-Key", seed.orderKey]], as: "alice" }),
      await seedOk("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FZ-C", quantity: 1 }] }, as: "alice" }),
      await seedOk("POST", "/v1/orders", { body: { customerId: "bob", items: [{ sku: "FZ-A", quantity: 1 }] }, as: "bob" }),
    ];
    const cancelled = await seedOk("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FZ-D", quantity: 1 }] }, as: "alice" });
    const afterCancel = await seedOk("POST", `/v1/orders/${cancelled.id}:cancel`, { as: "alice" });
    const refused = await call("POST", "/v1/orders", { body: { customerId: "alice", items: [{ sku: "FZ-SCARCE", quantity: 5 }] }, as: "alice" });
    seed.rejected = bodyOf(refused).details[0].metadata.orderId;
    seed.confirmed = placed.map((o) => ({ id: o.id, customerId: o.customerId, version: Number(o.version) }));
    // The query side applies events asynchronously: the views must exist before anything is measured.
    for (const { id, version } of [...seed.confirmed, { id: afterCancel.id, version: Number(afterCancel.version) }]) await seedOk("GET", `/v1/orders/${id}?minVersion=${version}`);
    await waitFor(async () => (await call("GET", `/v1/orders/${seed.rejected}`)).status === 200, "the rejected order's view");
    for (const sku of [...seed.skus, "FZ-EUR", "FZ-SCARCE"]) await waitFor(async () => (await call("GET", `/v1/stock/${sku}`)).status === 200, `the stock level of ${sku}`);
    initial = await settled(system);
    // Page tokens the API issued, and forgeries of them (right query, hostile cursor; wrong query).
    const issued: string[] = [];
    for (const target of ["/v1/inventory?pageSize=1", "/v1/stock?pageSize=1", "/v1/customers/alice/orders?pageSize=1", "/v1/sales/daily?pageSize=1"]) {
      const token = (await seedOk("GET", target)).nextPageToken as string;
      if (token) issued.push(token);
    }
    const forged = issued.flatMap((token) => {
      const { q, c } = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { q: string; c: unknown[] };
      const cursors: unknown[] = [[], ["'; DROP TABLE orders; --"], [1e308, -1], [...c, ...c], c.slice(0, 1), [{ $gt: "" }], "x", null];
      return [...cursors.map((cursor) => ({ q, c: cursor })), { q: `${q}' OR 1=1 --`, c }, { q: "items", c }].map((t) => Buffer.from(JSON.stringify(t)).toString("base64url"));
    });
    const today = new Date().toISOString().slice(0, 10);
    ctx = {
      known: {
        sku: [...seed.skus, "FZ-EUR", "FZ-SCARCE"],
        id: [...seed.confirmed.map((o) => o.id), afterCancel.id, seed.rejected],
        customer_id: ["alice", "bob", "eve"],
        page_token: [...issued, ...forged],
        start_day: [today, "2000-01-01", "2999-12-31"],
        end_day: [today, "2000-01-01", "2999-12-31"],
        currency_code: ["USD", "EUR"],
        min_version: ["0", "1"],
        name: ["Fuzz item", ...INJECTIONS.filter((s) => s !== "")],
      },
      callers: { admin: "admin", customers: ["alice", "bob"] },
      refine: keepMinVersionReachable,
    };
  }, 180_000);

  afterAll(async () => {
    for (const shape of shapes) console.log(`[fuzz A] ${tallyA.line(shape.key)}`);
    for (const shape of writes) console.log(`[fuzz B] ${tallyB.line(shape.key)}`);
    await system?.[Symbol.asyncDispose]();
  });

  /**
   * A read with a positive minVersion waits, within its deadline, for the
   * order (or the SKU's stock level) to reach that version, then answers 504
   * VERSION_NOT_REACHED: the documented read-your-writes contract, not a
   * fault; an order the caller may not see waits the same way, as an unknown
   * id does. So a well-formed positive minVersion is kept to one a known
   * order of the caller's (any order for the admin and for callers refused
   * before the read), or a seeded SKU (restocked: at version 1 or more), has
   * reached.
   */
  function keepMinVersionReachable(shape: RouteShape, draft: Draft): Draft {
    // A request that must be refused is refused before any wait (and must stay as broken as it is).
    if (draft.refused || !shape.queryFields.some((f) => f.name === "min_version")) return draft;
    const values = draft.query.filter(([k]) => k === "minVersion" || k === "min_version");
    if (values.length !== 1) return draft;
    let positive = false;
    try {
      positive = BigInt(values[0]![1]) > 0n;
    } catch {
      positive = false;
    }
    if (!positive) return draft;
    const order = seed.confirmed.find((o) => o.customerId === draft.caller) ?? seed.confirmed[0]!;
    const known: Record<string, { value: string }> = "sku" in draft.path ? { sku: { value: seed.skus[0]! } } : { id: { value: order.id } };
    return {
      ...draft,
      path: { ...draft.path, ...known },
      query: draft.query.map(([k, v]) => (k === "minVersion" || k === "min_version" ? [k, "1"] : [k, v])),
      labels: [...draft.labels, "minVersion kept reachable"],
    };
  }

  /** Refusals that need the system's facts: unknown or foreign resources, reused keys, a customer acting for another. */
  function domainMutations(shape: RouteShape): fc.Arbitrary<Mutation>[] {
    const withBody = (d: Draft, keys: (string | number)[], value: unknown): Draft => ({ ...d, body: setAt(d.body, keys, value as never) });
    switch (shape.key) {
      case "POST /v1/orders":
        return [
          // Next to a line that can be reserved: a line that cannot (too little stock, another currency) would record a REJECTED order first.
          fc.boolean().map((first): Mutation => ({
            label: `an unknown SKU ${first ? "before" : "after"} a known one`,
            apply: (d) => withBody(d, ["items"], first ? [{ sku: "FZ-NOPE-1", quantity: 1 }, { sku: "FZ-A", quantity: 1 }] : [{ sku: "FZ-A", quantity: 1 }, { sku: "FZ-NOPE-1", quantity: 1 }]),
          })),
          fc.constant<Mutation>({ label: "alice orders for bob", apply: (d) => ({ ...withBody(d, ["customerId"], "bob"), caller: "alice" }) }),
          fc.constant<Mutation>({
            label: `Idempotency-Key ${seed.orderKey} reused for other items`,
            apply: (d) => ({
              ...withBody(withBody(d, ["customerId"], "alice"), ["items"], [{ sku: "FZ-E", quantity: 3 }]),
              headers: [...d.headers.filter(([n]) => n !== "Idempotency-Key"), ["Idempotency-Key", seed.orderKey]],
            }),
          }),
        ];
      case "POST /v1/orders/{id}:cancel":
        return [
          fc.constant<Mutation>({ label: "unknown order", apply: (d) => ({ ...d, path: { ...d.path, id: { value: "ord_FUZZ0000000000000000000000" } } }) }),
          fc.constant<Mutation>({ label: "the rejected order", apply: (d) => ({ ...d, path: { ...d.path, id: { value: seed.rejected } } }) }),
          fc.constant<Mutation>({ label: "bob cancels alice's order", apply: (d) => ({ ...d, caller: "bob", path: { ...d.path, id: { value: seed.confirmed[0]!.id } } }) }),
        ];
      case "POST /v1/inventory/{sku}:restock":
        return [
          fc.integer({ min: 8, max: 1000 }).map((quantity): Mutation => ({
            label: `Idempotency-Key ${seed.restockKey} reused for ${quantity} units`,
            apply: (d) => ({ ...withBody(d, ["quantity"], quantity), headers: [...d.headers.filter(([n]) => n !== "Idempotency-Key"), ["Idempotency-Key", seed.restockKey]] }),
          })),
        ];
      default:
        return [];
    }
  }

  /** An error's reason that /openapi.json does not name for its route's status (from the proto's declared reasons and the common ones), or undefined. */
  function undocumentedReason(request: FuzzRequest, response: WireResponse): string | undefined {
    const reason = /"reason":"([A-Z_]+)"/.exec(response.text)?.[1];
    if (response.status < 400 || reason === undefined) return undefined;
    const [method, path] = request.route.split(" ") as [string, string];
    const named = openApi.paths[path]?.[method.toLowerCase()]?.responses[String(response.status)]?.["x-orderly-reasons"] ?? [];
    return named.includes(reason) ? undefined : `reason ${reason} is not one /openapi.json names for ${request.route} → ${response.status} (${named.join(", ")})`;
  }

  async function check(request: FuzzRequest, tally: Tally): Promise<void> {
    const response = await send(port, system.tokens, request);
    tally.add(request, response);
    const problem = problemWith(request, response, request.refused) ?? undocumentedReason(request, response);
    if (problem !== undefined) {
      throw new Error(`${problem}\n  request: ${describeRequest(request)}\n  response: ${response.status} ${response.text.slice(0, 500)}`);
    }
  }

  describe("B: a request that must be refused is refused with a reason and changes nothing", () => {
    for (const shape of writes) {
      test(`${shape.key}: ${RUNS} invalid requests`, async () => {
        const before = await settled(system);
        await fc.assert(
          fc.asyncProperty(invalidRequest(shape, ctx, domainMutations(shape)), (request) => check(request, tallyB)),
          { numRuns: RUNS, seed: SEED, endOnFailure: true },
        );
        const after = await settled(system);
        for (const file of DB_FILES) {
          expect(after.db[file]!.schema, `${file} schema`).toEqual(before.db[file]!.schema);
          expect(after.db[file]!.counts, `${file} row counts`).toEqual(before.db[file]!.counts);
          expect(after.db[file]!.digests, `${file} rows`).toEqual(before.db[file]!.digests);
        }
        expect(after.streams, "events published").toEqual(before.streams);
      }, TEN_MINUTES);
    }
  });

  describe("A: any request gets no 5xx, and every error a reason", () => {
    for (const shape of [...reads, ...writes]) {
      test(`${shape.key}: ${RUNS} arbitrary requests${isRead(shape) ? ", no database changed" : ""}`, async () => {
        const before = isRead(shape) ? await settled(system) : undefined;
        await fc.assert(
          fc.asyncProperty(arbitraryRequest(shape, ctx), (request) => check(request, tallyA)),
          { numRuns: RUNS, seed: SEED, endOnFailure: true },
        );
        if (before) {
          const after = await settled(system);
          expect(after).toEqual(before);
        }
      }, TEN_MINUTES);
    }
  });

  test("C: injection text in a restock's name and in Idempotency-Keys is stored as sent (or refused by the name's rule) and leaves every schema as it was", async () => {
    const before = await settled(system);
    // Whether the name's rule allows a name, decided by RE2 (what protovalidate specifies), not by the services' own matcher.
    const nameRule = stringRule(RestockRequestSchema.field.name);
    const namePattern = RE2JS.compile(nameRule.source!);
    const nameAllowed = (name: string) => namePattern.test(name) && [...name].length >= nameRule.minLen && [...name].length <= nameRule.maxLen!;
    let refusedNames = 0;
    const names = fc.oneof(
      fc.constantFrom(...INJECTIONS),
      fc.string({ unit: "binary", minLength: 1, maxLength: 200 }).map((s) => s.replace(/[\uD800-\uDFFF]/g, "?")),
      fc.constantFrom(...INJECTIONS).map((s) => s.repeat(Math.floor(200 / [...s].length))),
    );
    const keys = fc.oneof(fc.constantFrom(...KEY_INJECTIONS), fc.stringMatching(/^[!-~]{1,100}$/));
    const written: { sku: string; name: string }[] = [];
    /** Names that did not come back as sent: collected, so that one does not hide the schema and row checks. */
    const altered: string[] = [];
    await fc.assert(
      fc.asyncProperty(names, keys, async (name, key) => {
        const n = written.length;
        const sku = `FZC-${n}`;
        const restockKey = `${key}-r${n}`;
        const restocked = await call("POST", `/v1/inventory/${sku}:restock`, { body: { quantity: 3, name, unitPriceMinor: "100" }, headers: [["Idempotency-Key", restockKey]] });
        if (!nameAllowed(name)) {
          expect({ status: restocked.status, reason: /"reason":"([A-Z_]+)"/.exec(restocked.text)?.[1] }, restocked.text).toEqual({ status: 400, reason: "VALIDATION_FAILED" });
          refusedNames++;
          return;
        }
        expect(restocked.status, restocked.text).toBe(200);
        const read = await call("GET", `/v1/inventory/${sku}`);
        for (const [where, stored] of [["restock response", bodyOf(restocked).name], ["GET /v1/inventory/{sku}", bodyOf(read).name]] as const) {
          if (stored !== name) altered.push(`${where}: sent ${JSON.stringify(name)}, got ${JSON.stringify(stored)}`);
        }
        const orderKey = `${key}-o${n}`;
        const order = { customerId: "alice", items: [{ sku, quantity: 1 }] };
        const placed = await call("POST", "/v1/orders", { body: order, headers: [["Idempotency-Key", orderKey]], as: "alice" });
        expect(placed.status, placed.text).toBe(200);
        const replayed = await call("POST", "/v1/orders", { body: order, headers: [["Idempotency-Key", orderKey]], as: "alice" });
        expect(replayed.text).toBe(placed.text);
        written.push({ sku, name });
      }),
      { numRuns: 100, seed: SEED, endOnFailure: true, examples: INJECTIONS.map((name, i) => [name, KEY_INJECTIONS[i % KEY_INJECTIONS.length]!]) },
    );
    const count = written.length;
    const after = await settled(system);
    for (const file of DB_FILES) expect(after.db[file]!.schema, `${file} schema`).toEqual(before.db[file]!.schema);
    const delta = (file: string, table: string) => after.db[file]!.counts[table]! - before.db[file]!.counts[table]!;
    const exact: Record<string, Record<string, number>> = {
      "inventory.db": { items: count, restocks: count, reservations: count, outbox: after.streams.INVENTORY - before.streams.INVENTORY, dead_letters: 0 },
      "order.db": { orders: count, idempotency_keys: count, outbox: after.streams.ORDERS - before.streams.ORDERS, dead_letters: 0 },
      "query.db": { stock_levels: count, order_views: count, dead_letters: 0 },
    };
    // Bookkeeping of events (inboxes, timelines, sales rows, the relays' batches) grows with the events; every other table must not change.
    const grows = new Set(["processed_events", "order_timeline", "daily_sales", "sqlite_sequence", "outbox_batches"]);
    for (const file of DB_FILES) {
      for (const table of Object.keys(after.db[file]!.counts)) {
        const expected = exact[file]![table];
        if (expected !== undefined) expect(delta(file, table), `${file} ${table}`).toBe(expected);
        else if (grows.has(table)) expect(delta(file, table), `${file} ${table}`).toBeGreaterThanOrEqual(0);
        else expect(delta(file, table), `${file} ${table}`).toBe(0);
      }
    }
    const inventoryDb = openReadOnly(system.dataDir, "inventory.db");
    const queryDb = openReadOnly(system.dataDir, "query.db");
    try {
      for (const { sku, name } of written) {
        const stored = [
          ["inventory.db items.name", (inventoryDb.prepare("SELECT name FROM items WHERE sku = ?").get(sku) as { name: string }).name],
          ["query.db stock_levels.name", (queryDb.prepare("SELECT name FROM stock_levels WHERE sku = ?").get(sku) as { name: string }).name],
          ["GET /v1/stock/{sku}", bodyOf(await call("GET", `/v1/stock/${sku}`)).name],
        ] as const;
        for (const [where, value] of stored) if (value !== name) altered.push(`${where}: sent ${JSON.stringify(name)}, got ${JSON.stringify(value)}`);
      }
    } finally {
      inventoryDb.close();
      queryDb.close();
    }
    console.log(`[fuzz C] ${count} restocks and orders with injection text in names and Idempotency-Keys; ${refusedNames} names refused by their rule; ${altered.length} stored values differ from what was sent`);
    expect(count, "names the rule allows, stored").toBeGreaterThan(20);
    expect(altered, "names not stored and read back as sent").toEqual([]);
  }, TEN_MINUTES);

  test("a request the HTTP parser refuses (control characters in a header, a raw space in the path, an unknown method) is refused with a reason too", async () => {
    const breakages: { label: string; header?: readonly [string, string]; path?: string; method?: string }[] = [
      { label: "a control character in a header", header: ["Idempotency-Key", "a\u0001b"] },
      { label: "NUL in a header", header: ["X-Request-Id", "a\u0000b"] },
      { label: "a bare CR in a header", header: ["Idempotency-Key", "a\rb"] },
      { label: "a raw space in the path", path: "%20x y" },
      { label: "an unknown HTTP method", method: "FUZZ" },
    ];
    await fc.assert(
      fc.asyncProperty(fc.nat(shapes.length - 1), fc.nat(breakages.length - 1), async (s, b) => {
        const shape = shapes[s]!;
        const broke = breakages[b]!;
        const draft: Draft = { path: Object.fromEntries(shape.pathFields.map((f) => [f.name, { value: "FZ-A" }])), query: [], body: NO_BODY, headers: [], caller: "admin", labels: [broke.label] };
        const request = render(shape, draft, ctx);
        const sent: FuzzRequest = {
          ...request,
          method: broke.method ?? request.method,
          target: `${request.target}${broke.path ?? ""}`,
          headers: broke.header ? [...request.headers, broke.header] : request.headers,
        };
        const response = await send(port, system.tokens, sent);
        const problem = problemWith(sent, response, true);
        if (problem !== undefined) throw new Error(`${problem}: ${broke.label} on ${shape.key} → ${response.status} ${JSON.stringify(response.text)}`);
      }),
      { numRuns: 40, seed: SEED, endOnFailure: true },
    );
  });

  test("after all the fuzzing, every database has the schema it started with and passes integrity_check", async () => {
    const now = await settled(system);
    for (const file of DB_FILES) {
      expect(now.db[file]!.schema, `${file} schema`).toEqual(initial.db[file]!.schema);
      const db = openReadOnly(system.dataDir, file);
      try {
        expect(db.pragma("integrity_check", { simple: true }), `${file} integrity`).toBe("ok");
      } finally {
        db.close();
      }
    }
  }, TEN_MINUTES);

  // A passing property ran its RUNS cases; a failing one stops early (and is reported by its own test too).
  test("every route of the protos, and of /openapi.json, has a property of 1,000 arbitrary cases (writes: also one of 1,000 refused ones)", async () => {
    // The gateway's built-in paths (/healthz, /readyz, /openapi.json) are documented too, outside the API's /v1/.
    const documented = Object.entries(openApi.paths)
      .filter(([path]) => path.startsWith("/v1/"))
      // A HEAD is its GET without the body: fuzzed as that GET.
      .flatMap(([path, operations]) => Object.keys(operations).filter((method) => method !== "head").map((method) => `${method.toUpperCase()} ${path}`));
    expect(new Set(documented)).toEqual(new Set(shapes.map((s) => s.key)));
    for (const shape of shapes) {
      const operation = openApi.paths[shape.key.slice(shape.key.indexOf(" ") + 1)]![shape.route.httpMethod.toLowerCase()]!;
      const documentedQuery = operation.parameters.filter((p) => p.in === "query").map((p) => p.name);
      expect(documentedQuery.sort(), `${shape.key} query parameters`).toEqual(shape.queryFields.map((f) => f.jsonName).sort());
      expect(tallyA.cases(shape.key), `${shape.key} arbitrary cases`).toBeGreaterThanOrEqual(1000);
    }
    for (const shape of writes) expect(tallyB.cases(shape.key), `${shape.key} refused cases`).toBeGreaterThanOrEqual(1000);
  });

  test("after all the fuzzing, no service answered a reason its RPC does not declare in the proto (each would have logged it)", () => {
    const undeclared = [system.order, system.inventory, system.query].flatMap((service) => service.logs.filter((line) => line.includes("does not declare")));
    expect(undeclared).toEqual([]);
  });
});
