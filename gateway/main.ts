import { setMaxListeners } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Server } from "node:net";
import type { Duplex } from "node:stream";
import { InventoryService } from "../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../proto/gen/orderly/order/v1/order_pb.js";
import { QueryService } from "../proto/gen/orderly/query/v1/query_pb.js";
import { OrderlyError, httpStatusFor } from "../shared/errors/index.js";
import { listenable } from "../shared/config/index.js";
import { HealthState, logGrpcLibraryTo } from "../shared/grpc/index.js";
import { createLogger } from "../shared/logging/index.js";
import { DescriptorWatch, EventLoopLag, RequestWindow, startAdminServer, startTracing, statusReporter } from "../shared/observability/index.js";
import { configOrExit, drain, listen, runMain, turnOffPretenuring } from "../shared/process/index.js";
import { defaultDependencyPolicyOptions } from "../shared/resilience/index.js";
import { gatewayConfig } from "./config.js";
import { connectDownstreams, readinessProbe, routeCaller } from "./downstreams.js";
import { JwtVerifier, LinkTokens, PRINCIPAL_METADATA_KEY } from "../shared/security/index.js";
import { cachedReads } from "./cached-reads.js";
import { closingErrorResponse, connectRefusal, createGatewayHandler, expectationRefusal, parserRefusal, requestIdSource } from "./http-server.js";
import { afterAnswers, closeLingering, isLingering } from "./lingering-close.js";
import { RateLimiter } from "./rate-limiter.js";
import { invalidateOnEvents } from "./cache-invalidation.js";
import { LoadShedder } from "./load-shedder.js";
import { GatewayMetrics } from "./metrics.js";
import { ReadCache } from "./read-cache.js";
import { openApiDocument } from "./openapi.js";
import { routesOf } from "./routes/index.js";
import { statusPageHtml } from "./status-page.js";
import { systemStatus } from "./system-status.js";

/**
 * How long a shutdown waits for the requests in flight (ms) before it answers
 * those still waiting for a service 503 SERVICE_UNAVAILABLE: within
 * runMain's grace (10 s) with room to spare, where a request may ask for up
 * to MAX_REQUEST_TIMEOUT_MS (a minVersion read, say).
 */
const SHUTDOWN_DRAIN_MS = 5000;
/** How long a shutdown leaves idle kept-alive connections open, for a request already on its way on one. */
const IDLE_GRACE_MS = 1000;

turnOffPretenuring();
const config = await configOrExit("gateway", (env) => listenable(gatewayConfig(env)));
const logger = createLogger("gateway", config.logLevel);
logGrpcLibraryTo(logger);

runMain(logger, async () => {
  const tracing = await startTracing({ service: "gateway", logger, otlpEndpoint: config.otlpEndpoint, scheduleDelayMs: config.spanExportDelayMs });
  const downstreams = connectDownstreams(
    [
      { name: "order", service: OrderService, address: config.orderAddress },
      { name: "inventory", service: InventoryService, address: config.inventoryAddress },
      { name: "query", service: QueryService, address: config.queryAddress },
    ],
    // The budget bounds each call; a per-attempt timeout shorter than the largest budget would cut it.
    { ...defaultDependencyPolicyOptions, attemptTimeoutMs: config.limits.maxTimeoutMs, logger },
    config.security.tls,
  );
  const routes = routesOf(downstreams.map((d) => d.service));
  const shedder = new LoadShedder(config.shedding);
  const cache = config.cacheTtlMs > 0 ? new ReadCache(config.cacheTtlMs, { maxBytes: config.cacheMaxBytes }) : undefined;
  // Built once; a read the cache serves may answer with X-Cache.
  const openApi = openApiDocument(routes, { title: "Orderly", version: "v1" }, cache ? new Set(cachedReads.keys()) : undefined);
  const invalidation = cache ? invalidateOnEvents(cache, config.natsUrl, logger, config.natsAuth) : undefined;
  const policies = downstreams.map((d) => d.policy);
  const metrics = new GatewayMetrics({ cache, shedder, policies });
  const readiness = readinessProbe(downstreams);
  const lag = new EventLoopLag();
  // The cache's check: whether it hears the events that invalidate it. Cut off from NATS it still serves (its entries
  // live a second): degraded, not unready.
  const descriptors = new DescriptorWatch(logger);
  const health = new HealthState({ listening: () => true, ...(cache ? { cacheLive: () => cache.isLive } : {}), descriptors: () => descriptors.left() }, { degrading: ["cacheLive", "descriptors"] });
  let adminPort = config.adminPort;
  const status = systemStatus({
    self: statusReporter({
      name: "gateway",
      health,
      requests: new RequestWindow(metrics.requests, metrics.duration, "route", "code", (code) => Number(code) >= 500),
      lag,
      policies,
    }),
    selfMetricsUrl: () => `http://${config.host}:${adminPort}/metrics`,
    readiness,
    targets: Object.entries(config.adminAddresses).map(([name, address]) => ({ name, address })),
  });
  const jwt = new JwtVerifier(config.security.jwt!);
  const links = new LinkTokens(config.security.linkKey);
  const shutdown = { draining: new AbortController(), stopping: new AbortController() };
  // Each request waiting for a service listens to `stopping` (and stops listening when answered): many at once is normal,
  // not the leak Node warns of past ten (its warning is a line outside the JSON log).
  setMaxListeners(0, shutdown.stopping.signal);
  const newRequestId = requestIdSource();
  const handler = createGatewayHandler({
    routes,
    auth: {
      known: (authorization) => jwt.known(authorization),
      verify: (authorization) => jwt.verify(authorization),
      linkMetadata: (principal) => ({ [PRINCIPAL_METADATA_KEY]: links.sign(principal) }),
      rateLimiter: new RateLimiter(config.rateLimit),
    },
    call: routeCaller(downstreams),
    readiness,
    openApi: () => openApi,
    logger,
    limits: config.limits,
    shedder,
    cache: cache && { store: cache, routes: cachedReads },
    metrics,
    tracesEveryRequest: tracing.recording,
    shutdown: { draining: shutdown.draining.signal, stopping: shutdown.stopping.signal },
    newRequestId,
  });
  const server = createServer(
    {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: 5000,
      maxHeaderSize: config.maxHeaderBytes,
      // The handler refuses an HTTP/1.1 request without Host itself, with a reason like any other answer.
      requireHostHeader: false,
      // A header sent twice reaches the handler as its values joined with ", ", which no single-valued header
      // (Authorization, Idempotency-Key, X-Request-Timeout, traceparent) accepts: refused (or, for the ids, replaced),
      // never one of its values picked. Node's default keeps the first Authorization and drops the rest, and a proxy
      // in front that reads the last would have authenticated someone else.
      joinDuplicateHeaders: true,
      // How often slow clients (headers or body trickling in) are checked for and cut off.
      connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
    },
    handler,
  );
  // Every header counts (Node's default keeps the first 2,000 and drops the rest without a word: a second Authorization
  // or Host after 2,000 others would not be seen, nor refused as doubled); the headers' size is bounded by maxHeaderSize.
  server.maxHeadersCount = 0;
  // A request with Expect: 100-continue is handled as any other: it is told to go on when its body is read (readJson),
  // so a client hears its 401, 404 or 413 before it sends a body that would be refused.
  server.on("checkContinue", handler);
  // Connections with a refusal waiting for the answers before it: the parser, once failed, fails again on every read.
  const refusing = new WeakSet<Duplex>();
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    // Answered already: what the client still sends fails to parse again while the connection lingers.
    if (isLingering(socket) || refusing.has(socket)) return;
    if (!socket.writable) return socket.destroy();
    // The requests before the one that failed to parse are answered first, in order, and are not cut off (a client
    // that pipelined an order and then something malformed hears the order's answer, then the refusal). A request
    // whose own body failed (cut off by the client's close, a bad chunk) is not waited for: it gets the refusal.
    refusing.add(socket);
    afterAnswers(socket, (bodyOfAnswered) => {
      // A connection the last answer closed, or the client did, has no place for the refusal.
      if (!socket.writable || isLingering(socket)) return;
      // The body of a request refused before it came failed: that request has its answer, and gets no second one.
      if (bodyOfAnswered) return closeLingering(socket);
      // A client may still be sending (headers over the limit, then a body): it gets the answer, not a reset.
      refuseOnSocket(socket, parserRefusal(error, config.maxHeaderBytes));
    });
  });
  // Any other expectation is refused with a reason, like any other answer; the body it came with is not read.
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => handler(req, res, expectationRefusal(req.headers.expect)));
  server.on("connect", (_req, socket: Duplex) => {
    // Node hands the socket over without its own error listener: a client's reset would otherwise end the gateway.
    socket.on("error", () => socket.destroy());
    // After the answers to the requests before it, as for bytes that fail to parse.
    afterAnswers(socket, () => {
      if (socket.writable && !isLingering(socket)) refuseOnSocket(socket, connectRefusal());
    });
  });
  /** Answers a request the handler never saw with its refusal, counted and logged like the handler's, and closes the connection. */
  function refuseOnSocket(socket: Duplex, err: OrderlyError): void {
    const requestId = newRequestId();
    const status = httpStatusFor(err.code, err.reason);
    metrics.observe("unmatched", status, 0);
    logger.info({ requestId, status, reason: err.reason, message: err.message }, "request failed");
    socket.write(closingErrorResponse(err, requestId));
    closeLingering(socket);
  }
  // Metrics and the system's status (internal addresses, pids, errors) are for operators: on their own port, not the API's.
  // It listens first, so a gateway whose admin port is taken stops before it takes any request.
  const admin = await startAdminServer({ host: config.host, port: config.adminPort, portSetting: config.portSettings.admin, registry: metrics.registry, status, statusPage: statusPageHtml, health, logger, allowedHosts: config.adminHosts });
  adminPort = admin.port;
  await listen(server, config.port, config.host, logger, "api", config.portSettings.api).catch(async (error: unknown) => {
    await admin.close();
    throw error;
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  logger.info({ port, adminPort, routes: routes.map((r) => r.label) }, "listening");
  return {
    async close() {
      // From here on every answer closes its connection (a client's next request goes to another gateway, or waits for this one's return).
      shutdown.draining.abort();
      // It stops taking connections, but a kept-alive one that is idle stays open IDLE_GRACE_MS: a request already on its
      // way on it is answered (closing it) rather than cut off unanswered (a POST the client cannot tell was taken).
      // http.Server's own close() would close idle connections at once, so the listening socket is closed by net.Server's.
      const closed = new Promise<void>((resolve) => Server.prototype.close.call(server, () => resolve()));
      const idleGrace = setTimeout(() => server.closeIdleConnections(), IDLE_GRACE_MS);
      await drain(closed, SHUTDOWN_DRAIN_MS, {
        abort: () => {
          logger.warn({ inFlight: shedder.current, drainMs: SHUTDOWN_DRAIN_MS }, "stopped waiting for the requests in flight: those waiting for a service are answered 503");
          shutdown.stopping.abort(new OrderlyError("SERVICE_UNAVAILABLE", "the gateway is shutting down; retry"));
        },
        // What is still left once their answers are written (a body trickling in, say).
        cut: () => server.closeAllConnections(),
      });
      await closed;
      clearTimeout(idleGrace);
      await admin.close();
      shedder.close();
      await invalidation?.close();
      for (const d of downstreams) {
        d.policy.close();
        d.connection.close();
      }
      descriptors.close();
      lag.close();
      await tracing.shutdown();
    },
  };
});
