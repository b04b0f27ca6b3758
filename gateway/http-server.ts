import type { JsonValue, Message } from "@bufbuild/protobuf";
import { SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import { Code, OrderlyError, httpStatusFor, toStatusJson } from "../shared/errors/index.js";
import { HTTP_CODE_HEADER, checkRules, type CallOptions } from "../shared/grpc/index.js";
import type { Logger } from "../shared/logging/index.js";
import { accessRuleOf, actsForAnyCustomer, checkAccess, type Principal } from "../shared/security/index.js";
import { contextFromTraceparent, spanIds, traceparentOf, tracer } from "../shared/observability/index.js";
import type { LoadShedder } from "./load-shedder.js";
import type { RateLimiter } from "./rate-limiter.js";
import type { GatewayMetrics } from "./metrics.js";
import type { ReadCache } from "./read-cache.js";
import { resolveRoute, type Route } from "./routes/index.js";
import { requestFromHttp, responseToHttp, type HttpRequestParts } from "./transcode.js";

/** The limits and budgets of the gateway. */
export interface GatewayLimits {
  /** Deadline budget of a request that asks for none (ms). */
  defaultTimeoutMs: number;
  /** Largest budget a client may ask for with X-Request-Timeout (ms); larger asks are capped. */
  maxTimeoutMs: number;
  /** Largest request body (bytes); larger bodies get 413. */
  maxBodyBytes: number;
  /** Deepest nesting of objects and arrays a JSON body may have; deeper bodies get 400 (JSON_TOO_DEEP). */
  maxJsonDepth: number;
}

/** How the gateway knows who is calling, and tells the services. */
export interface GatewayAuth {
  /** The principal of an Authorization header value: AUTHENTICATION_REQUIRED without one, INVALID_CREDENTIALS when it does not verify. */
  authenticate: (authorization: string | undefined) => Promise<Principal>;
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
  metrics?: GatewayMetrics;
  /** The system's status (served at /status.json), and the page drawing it (at /status). */
  status?: { report: () => Promise<unknown>; page: string };
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
  /** The SERVER span of an API request, and the context that holds it (the parent of the gRPC call). */
  span: Span | undefined;
  traceContext: Context | undefined;
}

/** The path and the query string (without "?") of a request target; no URL object is needed for the gateway's routes. */
function splitTarget(target: string): { path: string; search: string } {
  const at = target.indexOf("?");
  return at < 0 ? { path: target, search: "" } : { path: target.slice(0, at), search: target.slice(at + 1) };
}

/** What a request's log line says of it (its trace ids too: the gateway never makes a span context active). */
function logFields(req: IncomingMessage, request: RequestState, status: number) {
  return {
    requestId: request.id,
    ...(request.span ? spanIds(request.span) : {}),
    method: req.method,
    url: req.url,
    status,
    ms: Math.round(performance.now() - request.started),
  };
}

/** The gateway's own endpoints (metrics label them by path; every other path is a route or unmatched). */
const builtInPaths = new Set(["/metrics", "/healthz", "/readyz", "/openapi.json", "/status", "/status.json"]);

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const TIMEOUT_PATTERN = /^\d{1,9}$/;

function send(res: ServerResponse, status: number, body: JsonValue): void {
  sendRaw(res, status, JSON.stringify(body));
}

function sendRaw(res: ServerResponse, status: number, payload: string): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  const tooLarge = () =>
    new OrderlyError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxBytes} bytes`, { metadata: { limitBytes: String(maxBytes) } });
  if (declared > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Whether JSON text nests objects and arrays deeper than `max` (checked before parsing, in one pass). */
function jsonDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Reads the body as JSON whatever its Content-Type says (curl -d sends form-urlencoded by default). */
async function readJson(req: IncomingMessage, limits: GatewayLimits): Promise<JsonValue | undefined> {
  const raw = await readBody(req, limits.maxBodyBytes);
  if (raw.length === 0) return undefined;
  const text = raw.toString("utf8");
  if (jsonDeeperThan(text, limits.maxJsonDepth)) {
    throw new OrderlyError("JSON_TOO_DEEP", `the JSON body nests deeper than ${limits.maxJsonDepth} levels`, {
      metadata: { maxDepth: String(limits.maxJsonDepth) },
    });
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new OrderlyError("MALFORMED_JSON", "the request body is not valid JSON");
  }
}

function deadlineOf(req: IncomingMessage, limits: GatewayLimits, now: number): number {
  const raw = req.headers["x-request-timeout"];
  if (raw === undefined) return now + limits.defaultTimeoutMs;
  const value = Array.isArray(raw) ? raw[0]! : raw;
  if (!TIMEOUT_PATTERN.test(value) || Number(value) < 1) {
    throw new OrderlyError("INVALID_HEADER", "X-Request-Timeout must be a whole number of milliseconds, 1 or more", {
      metadata: { header: "X-Request-Timeout" },
    });
  }
  return now + Math.min(Number(value), limits.maxTimeoutMs);
}

function idempotencyKeyOf(req: IncomingMessage): string | undefined {
  const raw = req.headers["idempotency-key"];
  if (raw === undefined) return undefined;
  const value = Array.isArray(raw) ? raw[0]! : raw;
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) {
    throw new OrderlyError("INVALID_HEADER", "Idempotency-Key must be 1-128 printable ASCII characters", {
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
 */
export function createGatewayHandler(deps: GatewayDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { limits, logger } = deps;

  async function handle(req: IncomingMessage, res: ServerResponse, request: RequestState): Promise<void> {
    const { path, search } = splitTarget(req.url ?? "/");
    const method = req.method ?? "GET";
    if (builtInPaths.has(path)) request.route = `${method} ${path}`;
    if (method === "GET" && path === "/metrics" && deps.metrics) {
      const text = await deps.metrics.registry.metrics();
      res.writeHead(200, { "content-type": deps.metrics.registry.contentType });
      res.end(text);
      return;
    }
    if (method === "GET" && path === "/healthz") {
      return send(res, 200, { status: "ok", inFlight: deps.shedder?.current ?? 0, eventLoopLagMs: deps.shedder?.eventLoopLagMs ?? 0 });
    }
    if (method === "GET" && path === "/readyz") {
      const readiness = await deps.readiness();
      return send(res, readiness.ready ? 200 : 503, { status: readiness.ready ? "ready" : "not ready", services: readiness.services });
    }
    if (method === "GET" && path === "/openapi.json") return send(res, 200, deps.openApi());
    if (method === "GET" && path === "/status.json" && deps.status) {
      res.setHeader("cache-control", "no-store");
      return send(res, 200, (await deps.status.report()) as JsonValue);
    }
    if (method === "GET" && path === "/status" && deps.status) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(deps.status.page);
      return;
    }

    const release = deps.shedder?.admit();
    try {
      const principal = await authenticate(req);
      await handleRoute(req, res, path, search, method, request, principal);
    } finally {
      release?.();
    }
  }

  /**
   * Who is calling (401 otherwise), within its rate limit (429): counted per
   * principal, or per address when the credentials are missing or wrong, so
   * guessing tokens is limited too.
   */
  async function authenticate(req: IncomingMessage): Promise<Principal> {
    let principal: Principal | undefined;
    let failure: unknown;
    try {
      principal = await deps.auth.authenticate(req.headers.authorization);
    } catch (error) {
      failure = error;
    }
    const wait = deps.auth.rateLimiter?.take(principal ? `sub:${principal.subject}` : `ip:${req.socket.remoteAddress}`) ?? 0;
    if (wait > 0) {
      throw new OrderlyError("RATE_LIMITED", "too many requests; retry after Retry-After seconds", { metadata: { retryAfterSeconds: String(wait) } });
    }
    if (principal === undefined) throw failure;
    return principal;
  }

  async function handleRoute(req: IncomingMessage, res: ServerResponse, path: string, search: string, method: string, request: RequestState, principal: Principal): Promise<void> {
    const { route, params } = resolveRoute(deps.routes, method, path);
    request.route = `${route.httpMethod} ${route.template.source}`;
    const fullName = `${route.service.typeName}/${route.method.name}`;
    // The services enforce the RPC's access rule; checking it here too refuses a wrong role before any work (and before the cache).
    checkAccess(accessRuleOf(route.method), principal, fullName);
    const deadline = deadlineOf(req, limits, Date.now());
    const idempotencyKey = idempotencyKeyOf(req);
    const query = search === "" ? new URLSearchParams() : new URLSearchParams(search);
    const parts = { params, query, body: undefined, idempotencyKey };
    const cached = deps.cache?.routes.get(fullName);
    const aggregateId = cached === undefined ? undefined : params[cached.param];
    if (deps.cache === undefined || cached === undefined || aggregateId === undefined) return forward(res, route, params, await transcode(req, route, parts), request, principal, deadline);

    // Per-customer resources are cached per customer (admins share one scope): a hit is only what the service let this scope read.
    const scope = cached.perCustomer && !actsForAnyCustomer(principal) ? `c:${principal.customerId}` : "*";
    const cacheKey = `${fullName}|${aggregateId}|${scope}`;
    // A cached answer must not skip the checks the service would make. Without a query string the
    // request is the path variable alone, and an entry is only filled with the service's answer to
    // that very request once it met the proto's rules: a hit needs neither transcoding nor the rules
    // again. Any other request is transcoded and checked first.
    const message = search === "" ? undefined : await transcode(req, route, parts);
    if (message !== undefined) checkRules(route.method.input, message);
    const hit = deps.cache.store.get(cacheKey, message === undefined ? 0 : minVersionOf(message));
    if (hit !== undefined) {
      res.setHeader("x-cache", "hit");
      return sendRaw(res, 200, hit);
    }
    const generation = deps.cache.store.generation(aggregateId);
    const fetched = message ?? (await transcode(req, route, parts));
    if (message === undefined) checkRules(route.method.input, fetched);
    return forward(res, route, params, fetched, request, principal, deadline, { key: cacheKey, aggregateId, generation });
  }

  /** The request message of a route: path variables, query, then the JSON body when the route takes one. */
  async function transcode(req: IncomingMessage, route: Route, parts: HttpRequestParts): Promise<Message> {
    const body = route.body === "" ? undefined : await readJson(req, limits);
    return requestFromHttp(route, { ...parts, body });
  }

  /** Calls the route's RPC and answers with its response; fills the cache entry `fill` names, and a write drops what is cached of its resources. */
  async function forward(
    res: ServerResponse,
    route: Route,
    params: Record<string, string>,
    message: Message,
    request: RequestState,
    principal: Principal,
    deadline: number,
    fill?: { key: string; aggregateId: string; generation: number },
  ): Promise<void> {
    const abandoned = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abandoned.abort();
    };
    res.on("close", onClose);
    try {
      const responseHeaders: Record<string, string> = {};
      const metadata = deps.auth.linkMetadata(principal);
      const response = await deps.call(route, message, {
        deadline,
        signal: abandoned.signal,
        requestId: request.id,
        responseHeaders,
        metadata,
        traceContext: request.traceContext,
      });
      const json = responseToHttp(route, response);
      const payload = JSON.stringify(json);
      const status = successStatus(responseHeaders[HTTP_CODE_HEADER]);
      if (deps.cache) {
        const version = Number((json as { version?: unknown } | null)?.version) || 0;
        if (fill !== undefined && status === 200) deps.cache.store.set(fill.key, fill.aggregateId, payload, version, fill.generation);
        // A write through this gateway drops what it cached of the resource at once, before the event arrives.
        if (route.httpMethod !== "GET") for (const value of Object.values(params)) deps.cache.store.invalidate(value, version);
      }
      sendRaw(res, status, payload);
    } finally {
      res.off("close", onClose);
    }
  }

  /**
   * An API request runs in a SERVER span, child of the client's
   * `traceparent` when it sends one; its trace context is answered in
   * `traceresponse` (W3C Trace Context level 2) so a client can find its trace.
   * The context is handed to the gRPC call explicitly (not made active), and
   * the request's log lines carry its ids.
   */
  function startSpan(req: IncomingMessage, res: ServerResponse, request: RequestState): void {
    if (!req.url?.startsWith("/v1/")) return;
    const sent = req.headers.traceparent;
    const parent = contextFromTraceparent(typeof sent === "string" ? sent : undefined);
    const span = tracer().startSpan(`HTTP ${req.method}`, { kind: SpanKind.SERVER }, parent);
    res.setHeader("traceresponse", traceparentOf(span.spanContext()));
    if (span.isRecording()) span.setAttributes({ "http.request.method": req.method ?? "", "url.path": req.url, "orderly.request_id": request.id });
    request.span = span;
    request.traceContext = trace.setSpan(parent, span);
  }

  return (req, res) => {
    const sent = req.headers["x-request-id"];
    const request: RequestState = {
      id: typeof sent === "string" && REQUEST_ID_PATTERN.test(sent) ? sent : randomUUID(),
      route: "unmatched",
      started: performance.now(),
      span: undefined,
      traceContext: undefined,
    };
    res.setHeader("x-request-id", request.id);
    startSpan(req, res, request);
    res.once("finish", () => {
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
    });
    respond(req, res, request);
  };

  function respond(req: IncomingMessage, res: ServerResponse, request: RequestState): void {
    handle(req, res, request).then(
      () => {
        if (logger.isLevelEnabled("debug")) logger.debug(logFields(req, request, res.statusCode), "request");
      },
      (error: unknown) => {
        const err = OrderlyError.from(error);
        const status = httpStatusFor(err.code, err.reason);
        const fields = { ...logFields(req, request, status), reason: err.reason };
        if (status >= 500 && err.code !== Code.UNAVAILABLE && err.code !== Code.DEADLINE_EXCEEDED) logger.error({ ...fields, err: err.cause ?? err }, "request failed");
        else logger.info({ ...fields, message: err.message }, "request failed");
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err.reason === "METHOD_NOT_ALLOWED" && err.metadata.allow) res.setHeader("allow", err.metadata.allow);
        if (err.code === Code.UNAVAILABLE || err.code === Code.RESOURCE_EXHAUSTED) res.setHeader("retry-after", err.metadata.retryAfterSeconds ?? "1");
        if (err.code === Code.UNAUTHENTICATED) {
          res.setHeader("www-authenticate", err.reason === "INVALID_CREDENTIALS" ? 'Bearer realm="orderly", error="invalid_token"' : 'Bearer realm="orderly"');
        }
        if (err.reason === "PAYLOAD_TOO_LARGE") {
          res.setHeader("connection", "close");
          req.resume();
        }
        send(res, status, toStatusJson(err));
      },
    );
  }
}

/**
 * The whole HTTP response to a request Node's parser refused before the
 * handler saw it: headers too large (431), headers not sent in time (408),
 * anything else malformed (400). Like every other answer, a
 * google.rpc.Status JSON body with a reason, and an X-Request-Id.
 */
export function clientErrorResponse(error: NodeJS.ErrnoException, maxHeaderBytes: number): string {
  const err =
    error.code === "HPE_HEADER_OVERFLOW"
      ? new OrderlyError("HEADERS_TOO_LARGE", `the request headers are larger than ${maxHeaderBytes} bytes`)
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? new OrderlyError("REQUEST_TIMEOUT", "the request was not received in time")
        : new OrderlyError("MALFORMED_REQUEST", "the request is not valid HTTP/1.1");
  const status = httpStatusFor(err.code, err.reason);
  const body = JSON.stringify(toStatusJson(err));
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${randomUUID()}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** The version a cached read must have reached: the request's `min_version`, however the query spelled it (minVersion or min_version). */
function minVersionOf(message: Message): number {
  const version = (message as { minVersion?: bigint }).minVersion;
  return version === undefined ? 0 : Number(version);
}
