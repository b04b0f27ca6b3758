import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { Outbox, consumerNames, soleServiceClaim, startEventRuntime, streams } from "../../shared/events/index.js";
import { logGrpcLibraryTo, connect, registration, startGrpcServer } from "../../shared/grpc/index.js";
import { listenable } from "../../shared/config/index.js";
import { createLogger } from "../../shared/logging/index.js";
import { ProcessMetrics, serviceHealth, startServiceAdmin, startTracing } from "../../shared/observability/index.js";
import { configOrExit, runMain } from "../../shared/process/index.js";
import { PRINCIPAL_METADATA_KEY, serviceAuth, type Principal } from "../../shared/security/index.js";
import { connectionPolicy, createResilientClient } from "../../shared/resilience/index.js";
import { claimSoleWriter, deleteInChunks, openDatabase, startBackgroundCheckpoints } from "../../shared/sqlite/index.js";
import { orderConfig } from "./config.js";
import { orderHandlers } from "./handlers/index.js";
import { newOrderId } from "./order-id.js";
import { PendingRecovery } from "./pending-recovery.js";
import { applyReservationOutcomes } from "./reservation-outcomes.js";
import { orderMigrations } from "./schema.js";
import { OrderStore } from "./store.js";

const config = await configOrExit("order", (env) => listenable(orderConfig(env)));
const logger = createLogger("order", config.logLevel);
logGrpcLibraryTo(logger);

runMain(logger, async (fatal) => {
  const tracing = await startTracing({ service: "order", logger, otlpEndpoint: config.otlpEndpoint, scheduleDelayMs: config.spanExportDelayMs });
  const metrics = new ProcessMetrics("order");
  const writer = claimSoleWriter(config.dbFile, "order");
  const db = openDatabase({ file: config.dbFile, migrations: orderMigrations, synchronous: config.synchronous });
  const checkpoints = await startBackgroundCheckpoints(db, logger);
  const outbox = new Outbox(db);
  const store = new OrderStore(db, outbox, Date.now, metrics.transactions);
  const events = startEventRuntime({
    servers: config.natsUrl,
    natsAuth: config.natsAuth,
    streamMaxEvents: config.streamMaxEvents,
    streamReplicas: config.streamReplicas,
    name: "order",
    logger,
    db,
    outbox,
    publishesTo: ["orders"],
    consumers: [
      {
        stream: streams.inventory.name,
        durable: consumerNames.orderReservationOutcomes,
        filterSubject: "orderly.inventory.reservation.>",
        handle: applyReservationOutcomes(store),
      },
    ],
    // A second order service (with a database of its own) ends, rather than take some of the events.
    claim: { ...soleServiceClaim("order", consumerNames.orderReservationOutcomes), lost: fatal },
    maxDeliveries: config.maxDeliveries,
    retryDelayMs: config.retryDelayMs,
    ackWaitMs: config.ackWaitMs,
    transactions: metrics.transactions,
  });
  // The order service calls inventory on its own behalf (reserving, releasing), as the "service" role.
  const auth = serviceAuth(config.security);
  const { links } = auth;
  const self: Principal = { subject: "service:order", customerId: undefined, roles: ["service"] };
  const inventoryConnection = connect(config.inventoryAddress, {
    tls: config.security.tls,
    callMetadata: () => ({ [PRINCIPAL_METADATA_KEY]: links.sign(self) }),
  });
  const inventoryPolicy = connectionPolicy(inventoryConnection, { ...config.inventoryPolicy, logger });
  const inventory = createResilientClient(InventoryService, inventoryConnection, inventoryPolicy);
  const degrade = config.inventoryFallback === "degrade";
  const recovery = new PendingRecovery({
    store,
    inventory,
    degrade,
    logger,
    afterMs: config.recoveryAfterMs,
    intervalMs: config.recoveryIntervalMs,
    budgetMs: config.defaultBudgetMs,
  });
  recovery.start();
  let ready = true;
  const { health, close: closeHealth } = serviceHealth(logger, { serving: () => ready, database: () => db.open, events });
  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    portSetting: config.portSettings.grpc,
    auth,
    tls: config.security.tls,
    logger,
    observeCalls: metrics.observeCalls,
    health,
    // A reservation or release that runs out of time leaves DEGRADE_MARGIN_MS to answer: 202 when degrading, else 504; a cancel's 200.
    // Of a budget shorter than twice that, half: the reservation is still tried (a 200 ms budget answered 202 without asking).
    budget: { defaultMs: config.defaultBudgetMs, answerMarginMs: (leftMs) => Math.min(config.degradeMarginMs, leftMs / 2) },
    services: [
      registration(
        OrderService,
        orderHandlers({ store, inventory, degrade, newId: () => newOrderId() }),
      ),
    ],
  });
  const admin = await startServiceAdmin({ name: "order", host: config.host, port: config.adminPort, portSetting: config.portSettings.admin, allowedHosts: config.adminHosts, metrics, health, logger, policies: [inventoryPolicy], events });
  // Expired keys go a chunk at a time, so a large prune never holds the service (see OrderStore.pruneIdempotencyKeys).
  let pruning = true;
  const pruneKeys = async () => {
    const before = Date.now() - config.idempotencyKeyTtlMs;
    const pruned = await deleteInChunks((limit) => store.pruneIdempotencyKeys(before, limit), () => pruning);
    if (pruned > 0) logger.info({ pruned }, "pruned expired idempotency keys");
  };
  const pruneLogged = () => void pruneKeys().catch((error: unknown) => logger.error({ err: error }, "pruning idempotency keys failed"));
  pruneLogged();
  const pruneTimer = setInterval(pruneLogged, 60 * 60 * 1000);
  pruneTimer.unref();
  logger.info({ port: server.port, adminPort: admin.port, db: config.dbFile, inventory: config.inventoryAddress, nats: config.natsUrl }, "listening");
  return {
    async close() {
      ready = false;
      clearInterval(pruneTimer);
      pruning = false;
      // The recovery loop stops while the server drains: a sweep in flight ends within its own budget, so both fit runMain's grace.
      await Promise.all([server.close(), recovery.close()]);
      // The admin port (readiness, metrics) closes before the database its metrics read, so no new scrape reaches a closed one.
      await admin.close();
      await events.close();
      inventoryPolicy.close();
      inventoryConnection.close();
      closeHealth();
      await checkpoints.close();
      db.close();
      writer.release();
      await tracing.shutdown();
    },
  };
});
