import type { JsonValue, Message } from "@bufbuild/protobuf";
import { SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { randomInt, randomUUID } from "node:crypto";
import { Code, OrderlyError, httpStatusFor, retryAfterSecondsOf, toStatusJson, underlyingCause, type Reason } from "../shared/errors/index.js";
import { HTTP_CODE_HEADER, STOCK_VERSIONS_HEADER, checkRules, isRequestId, stockVersionsOf, type CallOptions } from "../shared/grpc/index.js";
import type { Logger } from "../shared/logging/index.js";
import { CountsByKey, untilDeadline } from "../shared/resilience/index.js";
import { accessRuleOf, actsForAnyCustomer, checkAccess, type Principal } from "../shared/security/index.js";
import { contextFromTraceparent, shownPath, shownQuery, spanIds, traceparentOf, tracer } from "../shared/observability/index.js";
import { hasBody, isLingering, lingerIfBodyStillComing, lingerOnClose } from "./lingering-close.js";
import type { LoadShedder } from "./load-shedder.js";
import type { RateLimiter } from "./rate-limiter.js";
import type { GatewayMetrics } from "./metrics.js";
import { ANY_AGE, type CacheDemand, type CacheHit, type FetchedRead, type ReadCache } from "./read-cache.js";
import { indexRoutes, resolveRoute, servingMethod, type Route } from "./routes/index.js";
import { readJson, type BodyLimits } from "./json-body.js";
import { queryParameters, requestFromHttp, responseToHttp, takesIdempotencyKey, type HttpRequestParts } from "./transcode.js";

/** The limits and budgets of the gateway. */
export interface GatewayLimits extends BodyLimits {
  /** Deadline budget of a request that asks for none (ms). */
  defaultTimeoutMs: number;
  /** Largest budget a client may ask for with X-Request-Timeout (ms); larger asks are capped. */
  maxTimeoutMs: number;
  /** Most requests one principal may have in flight at once; more get 429 (TOO_MANY_IN_FLIGHT). */
  maxInFlightPerCaller: number;
}

/** How the gateway knows who is calling, and tells the services. */
export interface GatewayAuth {
  /** The principal of a token it already knows (verified before and not expired), without verifying anything. */
  known: (authorization: string | undefined) => Principal | undefined;
  /**
   * Verifies an Authorization header value `known` did not know: its principal, AUTHENTICATION_REQUIRED
   * without one, INVALID_CREDENTIALS when it does not verify. It rejects, never throws.
   */
  verify: (authorization: string | undefined) => Promise<Principal>;
  /** The metadata that carries a principal to a service (signed for the link). */
  linkMetadata: (principal: Principal) => Readonly<Record<string, string>>;
  /** Requests per principal (or per address before authentication). */
  rateLimiter?: RateLimiter;
}

/** What the gateway's request handler needs. */
export interface GatewayDeps {
  routes: readonly Route[];
  auth: GatewayAuth;
  /** Calls the RPC of a route on its service. */
  call: (route: Route, request: Message, options: CallOptions) => Promise<Message>;
  /** Whether every downstream service answers, and each one's status. */
  readiness: () => Promise<{ ready: boolean; services: Record<string, string> }>;
  /** The OpenAPI document (served at /openapi.json). */
  openApi: () => JsonValue;
  logger: Logger;
  limits: GatewayLimits;
  /** Admits or refuses API requests (health endpoints are always answered). */
  shedder?: LoadShedder;
  /**
   * The read cache, and which RPCs it serves: full method name → the path
   * variable naming the aggregate, and whether the resource belongs to a
   * customer (then entries are kept per customer, so a cached read is only
   * served to a principal the service already allowed to read it).
   */
  cache?: { store: ReadCache; routes: ReadonlyMap<string, CachedRead> };
  /** Where finished requests are counted (served on the admin port, with the status page: not here). */
  metrics?: GatewayMetrics;
  /** Start every API request's span as it arrives (spans are recorded); otherwise see ensureSpan. */
  tracesEveryRequest?: boolean;
  /** The process's shutdown, as far as requests see it. */
  shutdown?: GatewayShutdown;
  /** Makes the id of a request that brings none (default: a requestIdSource of its own); main.ts shares it with the refusals written straight to a socket (closingErrorResponse). */
  newRequestId?: () => string;
  /** The wall clock (ms) deadlines count by (default Date.now). */
  clock?: () => number;
}

/** A shutdown's two steps. */
export interface GatewayShutdown {
  /** Aborts when the shutdown begins: from then on every answer closes its connection. */
  draining: AbortSignal;
  /**
   * Aborts when the shutdown stops waiting for the requests in flight: each
   * one still waiting for a service is answered with the signal's reason (an
   * OrderlyError) instead of being cut off.
   */
  stopping: AbortSignal;
}

/** A read the gateway caches: the path variable naming the resource, and whether it belongs to a customer. */
export interface CachedRead {
  param: string;
  perCustomer: boolean;
}

/** What the handler knows of one request as it goes. */
interface RequestState {
  /** The X-Request-Id (the client's, when it sent a valid one). */
  readonly id: string;
  /** The route template (or built-in path) for metrics and the span's name; "unmatched" until known. */
  route: string;
  /** performance.now() when it arrived. */
  readonly started: number;
  /** The clock (GatewayDeps.clock) when it arrived, for a request that waited behind a write on its connection (see serve); else undefined: now. */
  readonly arrivedAt: number | undefined;
  /** The request itself (its method, target and traceparent make its span). */
  readonly req: IncomingMessage;
  /** The SERVER span of an API request, and the context that holds it (the parent of the gRPC call); see ensureSpan. */
  span: Span | undefined;
  traceContext: Context | undefined;
}

/** An RPC call a request makes, once its route is known and its caller allowed. */
interface Call {
  route: Route;
  params: Record<string, string>;
  request: RequestState;
  principal: Principal;
  deadline: number;
}

/**
 * How a cached read's request uses the cache once it goes asynchronous:
 * `looked` (the path alone, already looked up and missed: it shares the fetch
 * in flight or starts one), `look` (with a query string: looked up with its
 * minVersion once it is checked), `fresh` (the client asked not to be answered
 * from a cache: fetched for it alone, and the answer cached for later reads).
 */
type CacheUse = "looked" | "look" | "fresh";

/** Where a read's answer is cached. */
interface Fill {
  store: ReadCache;
  key: string;
  aggregateId: string;
}

/** The scheme and authority of an absolute-form request target ("http://host:port"). */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * The origin form ("/v1/…?…") of an absolute-form request target
 * ("http://host/v1/…"), which RFC 9112 §3.2.2 asks an origin server to
 * accept; any other target as it is.
 */
function originForm(target: string): string {
  const authority = ABSOLUTE_FORM.exec(target);
  if (authority === null) return target;
  const rest = target.slice(authority[0].length);
  return rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`;
}

/** The path and the query string (without "?") of a request target; no URL object is needed for the gateway's routes. */
function splitTarget(target: string): { path: string; search: string } {
  const at = target.indexOf("?");
  return at < 0 ? { path: target, search: "" } : { path: target.slice(0, at), search: target.slice(at + 1) };
}

/**
 * A Host header's form (RFC 9110 §7.2): a name or IPv4 address, or a bracketed IP literal (an IPv6 address, with a
 * zone as RFC 6874 writes it, or an IPvFuture), and an optional port.
 */
const HOST_FORM = /^(?:\[[0-9A-Za-z:.%\-_~]+\]|[A-Za-z0-9\-._~!$&'()*+;=%]*)(?::[0-9]*)?$/;

/**
 * The refusals after which a connection carries no other request: a body refused before all of it came (too large,
 * too slow, in a coding not read, with an expectation not met), and a request not well framed (MALFORMED_REQUEST),
 * behind which nothing on the connection can be trusted either.
 */
const CLOSES_CONNECTION: ReadonlySet<Reason> = new Set([
  "PAYLOAD_TOO_LARGE",
  "REQUEST_TIMEOUT",
  "UNSUPPORTED_CONTENT_ENCODING",
  "UNSUPPORTED_TRANSFER_ENCODING",
  "EXPECTATION_FAILED",
  "MALFORMED_REQUEST",
]);

/** Whether a request asks to switch protocols, as Node's parser reads it: an Upgrade header, and `upgrade` in Connection. */
function asksForUpgrade(req: IncomingMessage): boolean {
  return req.headers.upgrade !== undefined && /(?:^|,)\s*upgrade\s*(?:,|$)/i.test(req.headers.connection ?? "");
}

/**
 * Why a request is not well-formed HTTP/1.x that Node's parser let through, if it is not (MALFORMED_REQUEST, and the
 * connection is closed): another version (`HTTP/2.0` in a request line, or none, as HTTP/0.9), no Host on HTTP/1.1
 * or two (RFC 9112 §3.2: Node's own refusal, which the server turns off, is a 400 without a body; two reach the
 * handler joined with ", ", joinDuplicateHeaders, and no host has a comma), a Host that is no host, a fragment in
 * the target (which a client never sends), and a Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1: its framing cannot
 * be trusted, as an HTTP/1.0 hop in between may not have read it so).
 */
function framingRefusal(req: IncomingMessage): string | undefined {
  if (req.httpVersionMajor !== 1) return `HTTP/${req.httpVersion} is not spoken here: send HTTP/1.1`;
  const host = req.headers.host;
  if (host === undefined) {
    if (req.httpVersionMinor === 1) return "an HTTP/1.1 request must have a Host header";
  } else if (host.includes(",")) return "a request must have one Host header, not several";
  else if (!HOST_FORM.test(host)) return "the Host header is not a host and port";
  if (req.url?.includes("#")) return "a request target has no fragment (#)";
  if (req.httpVersionMinor === 0 && req.headers["transfer-encoding"] !== undefined) return "an HTTP/1.0 request cannot have a Transfer-Encoding";
  return undefined;
}

/** The names of the query parameters the routes take: their request messages' fields, by proto or JSON name. */
function queryNamesOf(routes: readonly Route[]): ReadonlySet<string> {
  return new Set(routes.flatMap((route) => route.method.input.fields.flatMap((field) => [field.name, field.jsonName])));
}

/** What a request's log line says of it (its trace ids too: the gateway never makes a span context active). */
function logFields(req: IncomingMessage, request: RequestState, status: number, queryNames: ReadonlySet<string>) {
  const url = req.url ?? "";
  const at = url.indexOf("?");
  return {
    requestId: request.id,
    ...(request.span ? spanIds(request.span) : {}),
    method: req.method,
    url: at < 0 ? shownPath(url) : `${shownPath(url.slice(0, at))}?${shownQuery(url.slice(at + 1), queryNames)}`,
    status,
    ms: Math.round(performance.now() - request.started),
  };
}

/** Any number of digits: a budget over the cap is capped, however large. */
const TIMEOUT_PATTERN = /^\d+$/;

/** A request id's 48-bit counter is kept in two halves of 6 hex digits each. */
const HALF_SIZE = 2 ** 24;

/** A counter half in hex: a small integer, so V8 formats it without the floating-point division a larger number takes per digit. */
function hexHalf(value: number): string {
  return value.toString(16).padStart(6, "0");
}

/**
 * UUIDv8 ids (RFC 9562's custom layout) for requests that bring none: 74
 * random bits per handler, then a 48-bit counter from `start` (random unless
 * given), the first id counting start + 1. The counter's high half is
 * formatted once each 2^24 requests: formatting the whole 48-bit number took
 * ~2,600 instructions per request (~2.5% of a cached read), one
 * floating-point remainder per hex digit.
 */
export function requestIdSource(start = randomInt(HALF_SIZE * HALF_SIZE - 1)): () => string {
  const random = randomUUID();
  const prefix = `${random.slice(0, 14)}8${random.slice(15, 24)}`;
  let high = Math.floor(start / HALF_SIZE);
  let low = start % HALF_SIZE;
  let head = prefix + hexHalf(high);
  return () => {
    if (++low === HALF_SIZE) {
      low = 0;
      high = (high + 1) % HALF_SIZE;
      head = prefix + hexHalf(high);
    }
    return head + hexHalf(low);
  };
}

const JSON_TYPE = "application/json; charset=utf-8";

/** The SKUs of an order's JSON (its lines'), none for any other resource. */
function skusOf(json: JsonValue): string[] {
  const items = (json as { items?: Array<{ sku?: unknown } | null> } | null)?.items;
  if (!Array.isArray(items)) return [];
  return items.map((item) => item?.sku).filter((sku): sku is string => typeof sku === "string");
}

/** The id of the resource a write answered with (an order's `id`, an item's `sku`), if any. */
function resourceOf(json: JsonValue): string[] {
  const resource = json as { id?: unknown; sku?: unknown } | null;
  const id = resource?.id ?? resource?.sku;
  return typeof id === "string" ? [id] : [];
}

/**
 * What a write through this gateway changed, each resource with the version the
 * service left it at where it tells (a SKU missing from its stock header, none):
 * the path's resources, and the one the write answered with (a new order), at
 * the answer's version; an order's SKUs, which it reserved or released, at the
 * versions the stock header names. A refused write changed the rejected order,
 * at the version its error carries.
 */
function writtenBy(params: Record<string, string>, outcome: { json: JsonValue; version: number; responseHeaders: Record<string, string> } | { error: unknown }): Map<string, number | undefined> {
  const written = new Map<string, number | undefined>();
  if ("error" in outcome) {
    const { orderId, orderVersion } = OrderlyError.from(outcome.error).metadata;
    if (orderId && Number(orderVersion) > 0) written.set(orderId, Number(orderVersion));
    return written;
  }
  for (const resource of [...Object.values(params), ...resourceOf(outcome.json)]) written.set(resource, outcome.version);
  const stock = stockVersionsOf(outcome.responseHeaders[STOCK_VERSIONS_HEADER]);
  for (const sku of skusOf(outcome.json)) written.set(sku, stock.get(sku));
  return written;
}

/** A reader that asks for the origin's answer: no cached one is old enough for it. */
const FRESH: CacheDemand = Object.freeze({ maxAgeMs: 0, minFreshMs: 0 });

/** A request directive: its name, and its delta-seconds (RFC 9111 §1.2.2), quoted or not (§5.2), when it has some. */
const DIRECTIVE = /^[ \t]*([A-Za-z-]+)[ \t]*(?:=[ \t]*(?:"(\d+)"|(\d+)))?[ \t]*$/;

/** `Pragma: no-cache`, HTTP/1.0's no-cache, heeded when a request has no Cache-Control (RFC 9111 §5.4). */
const PRAGMA_NO_CACHE = /(?:^|,)[ \t]*no-cache[ \t]*(?=,|$)/i;

/**
 * What a read's Cache-Control accepts of a cached answer (RFC 9111 §5.2.1): `no-cache` or `max-age=0` ask for the origin's
 * (FRESH), `max-age=N` for an answer at most N seconds old, `min-fresh=N` for one that stays fresh N seconds yet (this
 * cache's freshness being its TTL). A directive given twice counts at its strictest; one with a malformed value, and
 * any other (`no-store`, `max-stale`: nothing stale is ever served), is answered as without it. Without a
 * Cache-Control, `Pragma: no-cache` asks for the origin's answer.
 */
export function cacheDemandOf(headers: IncomingHttpHeaders): CacheDemand {
  const control = headers["cache-control"];
  if (control === undefined) {
    const pragma = headers.pragma;
    return pragma !== undefined && PRAGMA_NO_CACHE.test(pragma) ? FRESH : ANY_AGE;
  }
  let maxAgeMs = Infinity;
  let minFreshMs = 0;
  for (const directive of control.split(",")) {
    const [, name, quoted, plain] = DIRECTIVE.exec(directive) ?? [];
    const seconds = quoted ?? plain;
    switch (name?.toLowerCase()) {
      case "no-cache":
        return FRESH;
      case "max-age":
        if (seconds !== undefined) maxAgeMs = Math.min(maxAgeMs, Number(seconds) * 1000);
        break;
      case "min-fresh":
        if (seconds !== undefined) minFreshMs = Math.max(minFreshMs, Number(seconds) * 1000);
        break;
    }
  }
  if (maxAgeMs === 0) return FRESH;
  return maxAgeMs === Infinity && minFreshMs === 0 ? ANY_AGE : { maxAgeMs, minFreshMs };
}

/** The `version` of a resource's JSON, 0 when it has none. */
function versionOf(json: JsonValue): number {
  return Number((json as { version?: unknown } | null)?.version) || 0;
}

/** What a request carries besides its body, for transcoding. */
function partsOf(params: Record<string, string>, search: string, idempotencyKey: string | undefined): HttpRequestParts {
  return { params, query: queryParameters(search), body: undefined, idempotencyKey };
}

/**
 * A single-valued header's value. One sent twice is its values taken
 * together, as HTTP joins them (and the server's joinDuplicateHeaders), which
 * no such header's syntax accepts: refused, never one of them picked.
 */
function singleHeader(req: IncomingMessage, name: "x-request-timeout" | "idempotency-key"): string | undefined {
  const raw = req.headers[name];
  return Array.isArray(raw) ? raw.join(", ") : raw;
}

function deadlineOf(req: IncomingMessage, limits: GatewayLimits, now: number): number {
  const value = singleHeader(req, "x-request-timeout");
  if (value === undefined) return now + limits.defaultTimeoutMs;
  if (!TIMEOUT_PATTERN.test(value) || Number(value) < 1) {
    throw new OrderlyError("INVALID_HEADER", "X-Request-Timeout must be a whole number of milliseconds, 1 or more", {
      metadata: { header: "X-Request-Timeout" },
    });
  }
  return now + Math.min(Number(value), limits.maxTimeoutMs);
}

/** An Idempotency-Key: 1-128 visible ASCII characters (the OpenAPI document states it too). */
export const IDEMPOTENCY_KEY_PATTERN = /^[!-~]{1,128}$/;

function idempotencyKeyOf(req: IncomingMessage): string | undefined {
  const value = singleHeader(req, "idempotency-key");
  if (value === undefined) return undefined;
  if (!IDEMPOTENCY_KEY_PATTERN.test(value)) {
    throw new OrderlyError("INVALID_HEADER", "Idempotency-Key must be 1-128 visible ASCII characters (! to ~, no spaces)", {
      metadata: { header: "Idempotency-Key" },
    });
  }
  return value;
}

/** The 2xx status a service asked for (e.g. 202 Accepted), or 200. */
function successStatus(requested: string | undefined): number {
  const status = Number(requested);
  return Number.isInteger(status) && status >= 200 && status <= 299 ? status : 200;
}

/**
 * The gateway's HTTP handler: request id, built-in endpoints, route lookup,
 * deadline, body, transcoding to the RPC and back, and errors as
 * google.rpc.Status JSON with the mapped HTTP status. Nothing internal
 * (stack traces, addresses) reaches the client.
 *
 * A request runs synchronously as far as it can: a known token, the route,
 * the access rule and a read-cache hit need no promise, so a hit is answered
 * in the tick that parsed it. Only what waits (an unknown token's signature,
 * a body, a service) goes asynchronous.
 */
export function createGatewayHandler(deps: GatewayDeps): (req: IncomingMessage, res: ServerResponse, refusal?: OrderlyError) => void {
  const { limits, logger } = deps;
  const routeIndex = indexRoutes(deps.routes);
  // The writes that take an Idempotency-Key (create, restock): elsewhere the header is ignored, as the OpenAPI document has it.
  const keyed = new Set(deps.routes.filter(takesIdempotencyKey));
  const newRequestId = deps.newRequestId ?? requestIdSource();
  const clock = deps.clock ?? Date.now;
  const queryNames = queryNamesOf(deps.routes);
  /** The rate limit's key of each principal, made once per principal object (a remembered token's is the same object every time). */
  const subjectKeys = new WeakMap<Principal, string>();
  /** Requests in flight per principal (its subject key), while it has any. */
  const callersInFlight = new CountsByKey();
  const draining = deps.shutdown?.draining;

  function send(res: ServerResponse, requestId: string, status: number, body: JsonValue): void {
    sendRaw(res, requestId, status, JSON.stringify(body));
  }

  /**
   * A JSON response; `cache` says a read was answered by the cache (`hit`
   * from an entry, `shared` from another request's fetch of the same key).
   * Every header goes in the one writeHead call (headers set earlier with
   * setHeader, as on error paths, send Node down a slower path that merges
   * them one by one). Once a shutdown has begun, each answer closes its
   * connection.
   */
  function sendRaw(res: ServerResponse, requestId: string, status: number, payload: string, cache?: "hit" | "shared", age?: number): void {
    const headers: Record<string, string | number> = { "content-type": JSON_TYPE, "content-length": Buffer.byteLength(payload), "x-request-id": requestId };
    if (cache !== undefined) headers["x-cache"] = cache;
    if (age !== undefined) headers.age = age;
    if (draining?.aborted) headers.connection = "close";
    res.writeHead(status, headers);
    res.end(payload);
  }

  /** Answers with a cached read, and its `Age` (RFC 9111 §4: a cache answering without the origin says how old the answer is). */
  function sendHit(res: ServerResponse, requestId: string, hit: CacheHit): void {
    sendRaw(res, requestId, 200, hit.body, "hit", hit.ageSeconds);
  }

  /** Answers a request: at once, or when the returned promise settles. Throws what the client gets as an error. */
  function handle(req: IncomingMessage, res: ServerResponse, request: RequestState): Promise<void> | void {
    // Node's parser stops reading a connection at a request that asks for an Upgrade (the gateway has no upgrade
    // listener: it switches to no other protocol), so a request pipelined behind it would be dropped unanswered: the
    // connection is closed after this answer instead, and its client sends the next one again.
    if (asksForUpgrade(req)) res.setHeader("connection", "close");
    const refusal = framingRefusal(req);
    if (refusal !== undefined) throw new OrderlyError("MALFORMED_REQUEST", refusal);
    const { path, search } = splitTarget(req.url ?? "/");
    const method = req.method ?? "GET";
    // A built-in path is labelled by itself in metrics; other methods are 405.
    // (API paths are under /v1/: not looked up, as a property lookup by a new string hashes it in full.)
    if (!path.startsWith("/v1/") && Object.hasOwn(builtIns, path)) {
      // HEAD is served, and labelled, as GET (as on the API's routes).
      if (servingMethod(method) === "GET") {
        request.route = `GET ${path}`;
        return builtIns[path]!(res, request.id);
      }
      // Like an API route's 405, without asking for credentials (every built-in is open), and unmatched in metrics as
      // that one is: labelled by its method, anyone could add series to /metrics with every method Node knows.
      throw new OrderlyError("METHOD_NOT_ALLOWED", `${method} is not allowed on ${path}`, { metadata: { allow: "GET, HEAD" } });
    }
    const release = deps.shedder?.admit();
    let outcome: Promise<void> | void = undefined;
    try {
      const principal = authenticateFor(req, request, method, path);
      outcome = principal instanceof Promise ? principal.then((p) => handleRoute(req, res, path, search, method, request, p)) : handleRoute(req, res, path, search, method, request, principal);
      return outcome;
    } finally {
      if (!(outcome instanceof Promise)) release?.();
      else if (release) outcome.then(release, release);
    }
  }

  /**
   * The gateway's own GET endpoints on the API's port: what a load balancer
   * and a client generator need. Metrics and the status page, which show
   * internal addresses, are on the admin port (main.ts).
   */
  const builtIns: Record<string, (res: ServerResponse, id: string) => Promise<void> | void> = {
    "/healthz": (res, id) => send(res, id, 200, { status: "ok", inFlight: deps.shedder?.current ?? 0, eventLoopLagMs: deps.shedder?.eventLoopLagMs ?? 0 }),
    "/readyz": async (res, id) => {
      const readiness = await deps.readiness();
      // Retry-After on its 503 as on every other (the README and the OpenAPI document say so).
      if (!readiness.ready) res.setHeader("retry-after", "1");
      send(res, id, readiness.ready ? 200 : 503, { status: readiness.ready ? "ready" : "not ready", services: readiness.services });
    },
    "/openapi.json": (res, id) => send(res, id, 200, deps.openApi()),
  };
  // handle() looks built-ins up only outside the API's /v1/ paths.
  if (Object.keys(builtIns).some((path) => path.startsWith("/v1/"))) throw new Error("a built-in path must not be under /v1/");

  /**
   * Who is calling (401 otherwise), within its rate limit (429): counted per
   * principal, or per address when the credentials are missing or wrong, so
   * guessing tokens is limited too. A token verified before is known at once.
   * An address out of tokens gets its 429 before any token of it is
   * verified: a signature check costs far more than the refusal, and someone
   * guessing tokens must not be able to make the gateway do them at will (a
   * valid token new to the gateway, sent from that address, waits too).
   */
  function authenticate(req: IncomingMessage): Principal | Promise<Principal> {
    const known = deps.auth.known(req.headers.authorization);
    if (known !== undefined) return charge(req, known);
    const wait = deps.auth.rateLimiter?.wait(addressKey(req)) ?? 0;
    if (wait > 0) throw rateLimited(wait);
    return deps.auth.verify(req.headers.authorization).then(
      (principal) => charge(req, principal),
      (failure: unknown) => {
        charge(req, undefined);
        throw failure;
      },
    );
  }

  /**
   * authenticate, and for a request it refuses (401, 429) the label of the
   * route it was for, so metrics count refusals by route rather than as
   * unmatched (the route is looked up only then: a request let in looks it
   * up once, in handleRoute; one for no route stays unmatched).
   */
  function authenticateFor(req: IncomingMessage, request: RequestState, method: string, path: string): Principal | Promise<Principal> {
    try {
      const principal = authenticate(req);
      return principal instanceof Promise ? principal.catch((error: unknown) => labelRefused(request, method, path, error)) : principal;
    } catch (error) {
      return labelRefused(request, method, path, error);
    }
  }

  /** Labels a refused request with the route it was for (see authenticateFor), and throws its refusal. */
  function labelRefused(request: RequestState, method: string, path: string, refusal: unknown): never {
    try {
      request.route = resolveRoute(routeIndex, method, path).route.label;
    } catch {
      // No route for it: unmatched, as the refusal does not tell the client so.
    }
    throw refusal;
  }

  /** The rate limit's key of a principal, so a request neither concatenates it nor hashes a new string. */
  function subjectKey(principal: Principal): string {
    let key = subjectKeys.get(principal);
    if (key === undefined) subjectKeys.set(principal, (key = `sub:${principal.subject}`));
    return key;
  }

  /** Takes a token of the caller's rate limit, or throws RATE_LIMITED. */
  function charge(req: IncomingMessage, principal: Principal): Principal;
  function charge(req: IncomingMessage, principal: undefined): undefined;
  function charge(req: IncomingMessage, principal: Principal | undefined): Principal | undefined {
    const wait = deps.auth.rateLimiter?.take(principal ? subjectKey(principal) : addressKey(req)) ?? 0;
    if (wait > 0) throw rateLimited(wait);
    return principal;
  }

  /**
   * Runs a request's asynchronous work (`work`) within the principal's share
   * of the requests in flight (TOO_MANY_IN_FLIGHT beyond it), so that one
   * caller's slow requests (a body sent a byte at a time, long minVersion
   * waits) cannot take every place the load shedder has. A cache hit, answered
   * in the tick it arrived, never counts and is never refused.
   */
  function inCallersShare(principal: Principal, work: () => Promise<void>): Promise<void> {
    const key = subjectKey(principal);
    if (callersInFlight.of(key) >= limits.maxInFlightPerCaller) {
      throw new OrderlyError("TOO_MANY_IN_FLIGHT", `the caller already has ${limits.maxInFlightPerCaller} requests in flight; retry when one ends`, {
        metadata: { retryAfterSeconds: "1", limit: String(limits.maxInFlightPerCaller) },
      });
    }
    callersInFlight.add(key);
    const done = () => callersInFlight.remove(key);
    let outcome: Promise<void>;
    try {
      outcome = work();
    } catch (error) {
      done();
      throw error;
    }
    outcome.then(done, done);
    return outcome;
  }

  function handleRoute(req: IncomingMessage, res: ServerResponse, path: string, search: string, method: string, request: RequestState, principal: Principal): Promise<void> | void {
    const { route, params } = resolveRoute(routeIndex, method, path);
    request.route = route.label;
    const { fullName } = route;
    // The services enforce the RPC's access rule; checking it here too refuses a wrong role before any work (and before the cache).
    checkAccess(accessRuleOf(route.method), principal, fullName);
    // Its budget counts from its arrival: the time it waited behind a write on its connection is spent of it.
    const deadline = deadlineOf(req, limits, request.arrivedAt ?? clock());
    const idempotencyKey = keyed.has(route) ? idempotencyKeyOf(req) : undefined;
    const cached = deps.cache?.routes.get(fullName);
    const aggregateId = cached === undefined ? undefined : params[cached.param];
    const call = { route, params, request, principal, deadline };
    if (deps.cache === undefined || cached === undefined || aggregateId === undefined) {
      // Its body has its whole budget to come from now: the wait behind a write was not the client's slowness (were it refused
      // 408, the connection would close, and what is pipelined behind it be lost). Its call has what is left.
      const bodyWithinMs = deadline - (request.arrivedAt ?? clock());
      return inCallersShare(principal, () => transcode(req, res, route, partsOf(params, search, idempotencyKey), bodyWithinMs).then((message) => forward(res, call, message)));
    }

    // Per-customer resources are cached per customer (admins share one scope): a hit is only what the service let this scope read.
    const scope = cached.perCustomer && !actsForAnyCustomer(principal) ? `c:${principal.customerId}` : "*";
    const fill = { store: deps.cache.store, key: `${fullName}|${aggregateId}|${scope}`, aggregateId };
    // A cached answer must not skip the checks the service would make. Without a query string the
    // request is the path variable alone, and an entry is only filled with the service's answer to
    // that very request once it met the proto's rules: a hit needs neither transcoding nor the rules
    // again. Any other request is transcoded and checked first, and one that asks for a fresh answer is never a hit.
    const demand = cacheDemandOf(req.headers);
    if (search === "" && demand !== FRESH) {
      const hit = fill.store.get(fill.key, 0, demand);
      if (hit !== undefined) {
        sendHit(res, request.id, hit);
        if (hit.refreshDue) void refresh(call, partsOf(params, search, idempotencyKey), fill);
        return;
      }
    }
    const use: CacheUse = demand === FRESH ? "fresh" : search === "" ? "looked" : "look";
    return inCallersShare(principal, () => readThrough(req, res, call, partsOf(params, search, idempotencyKey), fill, use, demand));
  }

  /**
   * Fetches a fresh copy of a hit's entry in the background, as the reader
   * whose hit found it near expiry (the entry is that reader's scope), with
   * the default budget and in no reader's trace. It is the request the entry
   * was filled with (the path alone, which met the proto's rules then).
   * Readers that miss meanwhile share it; a failure only leaves the entry to
   * expire.
   */
  async function refresh(call: Call, parts: HttpRequestParts, fill: Fill): Promise<void> {
    try {
      const background = { ...call, deadline: clock() + limits.defaultTimeoutMs, request: { ...call.request, traceContext: undefined } };
      await fetchShared(background, requestFromHttp(call.route, parts), fill);
    } catch (error) {
      logger.debug({ err: error, requestId: call.request.id, key: fill.key }, "cache refresh failed");
    }
  }

  /**
   * A read the cache did not answer: transcoded and checked; looked up again
   * with its min_version when it has a query (then fetched by itself), fetched
   * by itself when the client asked for a fresh answer, else answered by the
   * fetch of the same key in flight, or by one it starts.
   */
  async function readThrough(req: IncomingMessage, res: ServerResponse, call: Call, parts: HttpRequestParts, fill: Fill, use: CacheUse, demand: CacheDemand): Promise<void> {
    const generation = fill.store.generation();
    const message = await transcode(req, res, call.route, parts, call.deadline - clock());
    checkRules(call.route.method.input, message);
    if (use !== "looked") {
      const hit = use === "look" ? fill.store.get(fill.key, minVersionOf(message), demand) : undefined;
      if (hit !== undefined) return sendHit(res, call.request.id, hit);
      if (use === "fresh") fill.store.countBypass();
      return forward(res, call, message, { ...fill, generation });
    }
    const shared = fill.store.inFlight(fill.key, fill.aggregateId);
    if (shared !== undefined) fill.store.countShared();
    ensureSpan(call.request, res);
    // Each reader waits within its own deadline; the fetch has the longer of its starter's and the default budget.
    let joinedFailure: unknown;
    const fetching =
      shared?.catch((error: unknown) => {
        joinedFailure = error;
        throw error;
      }) ?? fetchShared({ ...call, deadline: Math.max(call.deadline, clock() + limits.defaultTimeoutMs) }, message, fill, generation);
    let answer: FetchedRead;
    try {
      answer = await untilDeadline(fetching, call.deadline, "the read in flight", deps.shutdown?.stopping);
    } catch (error) {
      // The fetch it joined ran out of its own budget (its starter's, shorter than this reader's): it fetches again within
      // what is left of its own, rather than answer 504 for a deadline it never set. Which one ran out is told by the error,
      // not the clock (a timer may fire a millisecond before the clock reaches the deadline it was set for); the clock
      // only keeps a reader with nothing left from fetching.
      if (error !== joinedFailure || OrderlyError.from(error).code !== Code.DEADLINE_EXCEEDED || clock() >= call.deadline) throw error;
      answer = await untilDeadline(fetchShared(call, message, fill), call.deadline, "the read in flight", deps.shutdown?.stopping);
      return sendRaw(res, call.request.id, answer.status, answer.body);
    }
    if (shared === undefined || answer.status !== 200) return sendRaw(res, call.request.id, answer.status, answer.body);
    // The fetch it joined read the resource older than a version this gateway announced (a write through it, which this
    // reader may have made, or an event), which the read model may hold by now: not passed on. The readers that joined it
    // fetch again, one fetch for all of them, and get what the read model holds then.
    if (fill.store.predatesAnnounced(fill.aggregateId, answer.version)) {
      const again = fill.store.inFlight(fill.key, fill.aggregateId) ?? fetchShared(call, message, fill);
      answer = await untilDeadline(again, call.deadline, "the read in flight", deps.shutdown?.stopping);
      return sendRaw(res, call.request.id, answer.status, answer.body);
    }
    sendRaw(res, call.request.id, 200, answer.body, "shared");
  }

  /**
   * Fetches a read as the one fetch of its key in flight (ReadCache.share),
   * for every reader that misses meanwhile: no reader's disconnect cancels
   * it, and its answer (or error) is theirs. Cached when 200.
   */
  function fetchShared(call: Call, message: Message, fill: Fill, generation = fill.store.generation()): Promise<FetchedRead> {
    return fill.store.share(fill.key, generation, async () => {
      const requestedAt = fill.store.now();
      const { payload, status, version } = await invoke(call, message);
      if (status === 200) fill.store.set(fill.key, fill.aggregateId, payload, version, generation, requestedAt);
      return { body: payload, status, version };
    });
  }

  /** Calls a route's RPC: its response as the HTTP body, the status the service asked for, the resource's version, and the service's response headers. */
  async function invoke(call: Call, message: Message, signal?: AbortSignal): Promise<{ payload: string; status: number; version: number; json: JsonValue; responseHeaders: Record<string, string> }> {
    const responseHeaders: Record<string, string> = {};
    const response = await deps.call(call.route, message, {
      deadline: call.deadline,
      signal,
      requestId: call.request.id,
      responseHeaders,
      metadata: deps.auth.linkMetadata(call.principal),
      traceContext: call.request.traceContext,
    });
    const json = responseToHttp(call.route, response);
    return { payload: JSON.stringify(json), status: successStatus(responseHeaders[HTTP_CODE_HEADER]), version: versionOf(json), json, responseHeaders };
  }

  /** The request message of a route: path variables, query, then the JSON body when the route takes one (received within `bodyWithinMs`). */
  async function transcode(req: IncomingMessage, res: ServerResponse, route: Route, parts: HttpRequestParts, bodyWithinMs: number): Promise<Message> {
    const body = route.body === "" ? undefined : await readJson(req, res, limits, bodyWithinMs);
    return requestFromHttp(route, { ...parts, body });
  }

  /**
   * Calls the route's RPC for this request alone (a client that hangs up
   * abandons it, and so does a shutdown that stops waiting, which answers it
   * with its reason) and answers with its response; fills the cache entry `fill`
   * names, and a write drops what is cached of its resources.
   */
  async function forward(res: ServerResponse, call: Call, message: Message, fill?: Fill & { generation: number }): Promise<void> {
    ensureSpan(call.request, res);
    const abandoned = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abandoned.abort();
    };
    const stopping = deps.shutdown?.stopping;
    const onStopping = () => abandoned.abort(stopping!.reason);
    res.on("close", onClose);
    if (stopping?.aborted) onStopping();
    else stopping?.addEventListener("abort", onStopping, { once: true });
    try {
      const requestedAt = fill?.store.now();
      const answered = await invoke(call, message, abandoned.signal);
      if (fill !== undefined && answered.status === 200) fill.store.set(fill.key, fill.aggregateId, answered.payload, answered.version, fill.generation, requestedAt);
      announceWrite(call, answered);
      sendRaw(res, call.request.id, answered.status, answered.payload);
    } catch (error) {
      announceWrite(call, { error });
      throw error;
    } finally {
      res.off("close", onClose);
      stopping?.removeEventListener("abort", onStopping);
    }
  }

  /**
   * A write through this gateway drops what it cached of the resources it
   * changed at once, before their events arrive, and announces the versions it
   * left them at (writtenBy): what the writer saw, or was told when refused, is
   * never answered older from here, even should this gateway miss the events.
   */
  function announceWrite(call: Call, outcome: Parameters<typeof writtenBy>[1]): void {
    if (!deps.cache || call.route.httpMethod === "GET") return;
    for (const [resource, version] of writtenBy(call.params, outcome)) deps.cache.store.invalidate(resource, version);
  }

  /**
   * An API request's SERVER span, child of the client's `traceparent` when it
   * sends one; its trace context is answered in `traceresponse` (W3C Trace
   * Context level 2) so a client can find its trace. The context is handed to
   * the gRPC call explicitly (not made active), and the request's log lines
   * carry its ids. When spans are recorded every request gets one as it
   * arrives; otherwise (ids only, for the logs) a request gets one when it
   * reaches a service or fails, and a cache hit, which logs nothing, none.
   */
  function ensureSpan(request: RequestState, res: ServerResponse): void {
    const { req } = request;
    if (request.span !== undefined || !req.url?.startsWith("/v1/")) return;
    const sent = req.headers.traceparent;
    const parent = contextFromTraceparent(typeof sent === "string" ? sent : undefined);
    const span = tracer().startSpan(`HTTP ${req.method}`, { kind: SpanKind.SERVER }, parent);
    if (!res.headersSent) res.setHeader("traceresponse", traceparentOf(span.spanContext()));
    if (span.isRecording()) {
      const { path, search } = splitTarget(req.url);
      span.setAttributes({ "http.request.method": req.method ?? "", "url.path": shownPath(path), "orderly.request_id": request.id });
      if (search !== "") span.setAttribute("url.query", shownQuery(search, queryNames));
    }
    request.span = span;
    request.traceContext = trace.setSpan(parent, span);
  }

  /** Metrics and the span's end, once the response is sent. */
  function finished(res: ServerResponse, request: RequestState): void {
    deps.metrics?.observe(request.route, res.statusCode, (performance.now() - request.started) / 1000);
    const span = request.span;
    if (span) {
      if (span.isRecording()) {
        span.updateName(request.route);
        span.setAttributes({ "http.route": request.route, "http.response.status_code": res.statusCode });
        if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    }
  }

  /** Per connection, the answer of the write in flight on it, while there is one (see serve). */
  const writesInFlight = new WeakMap<object, Promise<void>>();

  // `refusal`: a request the server hands over only to be refused (an Expect it cannot meet), answered in turn like any other.
  // `arrived`: when a request that waits behind a write arrived (the times it is timed and budgeted from).
  return function serve(req, res, refusal, arrived?: { at: number; started: number }) {
    // A request pipelined behind a body the gateway refused, read while the connection lingers: it could not be answered.
    if (isLingering(req.socket)) {
      req.resume();
      return;
    }
    // Node's server runs a request pipelined on a connection as soon as it is read. Behind a write still in flight it waits for
    // the write's answer (RFC 9112 §9.3.2: only safe requests may be handled in parallel), so a read sent behind a write
    // sees it, from the read cache as from the read model.
    const writing = writesInFlight.get(req.socket);
    if (writing !== undefined) {
      const since = arrived ?? { at: clock(), started: performance.now() };
      return void writing.then(() => serve(req, res, refusal, since));
    }
    if (servingMethod(req.method ?? "GET") !== "GET") {
      const answered = new Promise<void>((resolve) => res.once("close", resolve));
      writesInFlight.set(req.socket, answered);
      void answered.then(() => {
        if (writesInFlight.get(req.socket) === answered) writesInFlight.delete(req.socket);
      });
    }
    // An absolute-form target is handled as its origin form from here on: routed, traced and logged by its path.
    if (req.url !== undefined && req.url.charCodeAt(0) !== 0x2f) req.url = originForm(req.url);
    const sent = req.headers["x-request-id"];
    const request: RequestState = {
      id: typeof sent === "string" && isRequestId(sent) ? sent : newRequestId(),
      route: "unmatched",
      started: arrived?.started ?? performance.now(),
      arrivedAt: arrived?.at,
      req,
      span: undefined,
      traceContext: undefined,
    };
    if (deps.tracesEveryRequest) ensureSpan(request, res);
    if (hasBody(req)) {
      lingerOnClose(req.socket);
      // Answered before its body came (a refusal): the rest of the body gets a short while, not the server's request timeout.
      res.once("finish", () => lingerIfBodyStillComing(req));
    }
    let outcome: Promise<void> | void = undefined;
    try {
      if (refusal !== undefined) throw refusal;
      outcome = handle(req, res, request);
    } catch (error) {
      failed(req, res, request, error);
      return finished(res, request);
    }
    // Answered at once (a hit, an error, most built-ins): the response is written, so it is recorded now.
    if (!(outcome instanceof Promise)) {
      finished(res, request);
      return succeeded(req, res, request);
    }
    // Recorded once the answer is sent; an answer to a client already gone (499) is never sent, so no "finish" comes: it
    // is recorded once written.
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      finished(res, request);
    };
    res.once("finish", record);
    outcome.then(
      () => {
        succeeded(req, res, request);
        if (res.destroyed) record();
      },
      (error: unknown) => {
        failed(req, res, request, error);
        if (res.destroyed) record();
      },
    );
  };

  function succeeded(req: IncomingMessage, res: ServerResponse, request: RequestState): void {
    if (logger.isLevelEnabled("debug")) logger.debug(logFields(req, request, res.statusCode, queryNames), "request");
  }

  function failed(req: IncomingMessage, res: ServerResponse, request: RequestState, error: unknown): void {
    const err = OrderlyError.from(error);
    const status = httpStatusFor(err.code, err.reason);
    ensureSpan(request, res);
    const fields = { ...logFields(req, request, status, queryNames), reason: err.reason };
    if (status >= 500 && err.code !== Code.UNAVAILABLE && err.code !== Code.DEADLINE_EXCEEDED) logger.error({ ...fields, err: err.cause ?? err }, "request failed");
    else logger.info({ ...fields, message: err.message, cause: underlyingCause(err) }, "request failed");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err.reason === "METHOD_NOT_ALLOWED" && err.metadata.allow) res.setHeader("allow", err.metadata.allow);
    const retryAfter = retryAfterSecondsOf(err);
    if (retryAfter !== undefined) res.setHeader("retry-after", retryAfter);
    if (err.code === Code.UNAUTHENTICATED) {
      res.setHeader("www-authenticate", err.reason === "INVALID_CREDENTIALS" ? 'Bearer realm="orderly", error="invalid_token"' : 'Bearer realm="orderly"');
    }
    // RFC 9110 §15.5.16: a body refused for its content coding is answered with the codings that are accepted.
    if (err.reason === "UNSUPPORTED_CONTENT_ENCODING") res.setHeader("accept-encoding", "identity");
    if (CLOSES_CONNECTION.has(err.reason)) {
      res.setHeader("connection", "close");
      req.resume();
    }
    send(res, request.id, status, toStatusJson(err));
  }
}

/**
 * Why Node's parser refused a request before the handler saw it: headers too
 * large (431), headers not sent in time (408), anything else malformed (400).
 */
export function parserRefusal(error: NodeJS.ErrnoException, maxHeaderBytes: number): OrderlyError {
  return error.code === "HPE_HEADER_OVERFLOW"
    ? new OrderlyError("HEADERS_TOO_LARGE", `the request headers are larger than ${maxHeaderBytes} bytes`)
    : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? new OrderlyError("REQUEST_TIMEOUT", "the request was not received in time")
      : new OrderlyError("MALFORMED_REQUEST", "the request is not valid HTTP/1.1");
}

/**
 * Why a request whose Expect header asks for anything but 100-continue is
 * refused (RFC 9110 §10.1.1: 417), which Node hands to the server's
 * `checkExpectation` listener rather than to the handler (without one, it
 * answered a bare 417 with no reason or request id).
 */
export function expectationRefusal(expect: string | undefined): OrderlyError {
  return new OrderlyError("EXPECTATION_FAILED", `Expect: ${JSON.stringify(expect ?? "")} cannot be met; only 100-continue is`);
}

/** The methods the gateway serves on some path: what a CONNECT's 405 names in Allow. */
const SERVED_METHODS = "GET, HEAD, POST";

/**
 * Why a CONNECT request, which Node hands to the server's `connect` listener
 * rather than to the handler (without one, it closed the connection
 * unanswered), is refused: 405, as the gateway is no proxy.
 */
export function connectRefusal(): OrderlyError {
  return new OrderlyError("METHOD_NOT_ALLOWED", "CONNECT is not allowed: the gateway is not a proxy", { metadata: { allow: SERVED_METHODS } });
}

/**
 * A refusal written straight to a socket the handler never saw, which is
 * closed after it: like every other answer, a google.rpc.Status JSON body with
 * a reason, an X-Request-Id (`requestId`, from the handler's source, as the
 * request's own header was not read) and the Allow a 405 names.
 */
export function closingErrorResponse(err: OrderlyError, requestId: string): string {
  const status = httpStatusFor(err.code, err.reason);
  const body = JSON.stringify(toStatusJson(err));
  const allow = err.metadata.allow ? `allow: ${err.metadata.allow}\r\n` : "";
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json; charset=utf-8\r\n${allow}` +
    `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** The version a cached read must have reached: the request's `min_version`, however the query spelled it (minVersion or min_version). */
function minVersionOf(message: Message): number {
  const version = (message as { minVersion?: bigint }).minVersion;
  return version === undefined ? 0 : Number(version);
}

/** The rate limit's key of a caller not (yet) authenticated: its address. */
function addressKey(req: IncomingMessage): string {
  return `ip:${req.socket.remoteAddress}`;
}

function rateLimited(waitSeconds: number): OrderlyError {
  return new OrderlyError("RATE_LIMITED", "too many requests; retry after Retry-After seconds", { metadata: { retryAfterSeconds: String(waitSeconds) } });
}
