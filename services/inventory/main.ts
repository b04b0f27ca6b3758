import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderService } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { Outbox, consumerNames, soleServiceClaim, startEventRuntime, streams } from "../../shared/events/index.js";
import { logGrpcLibraryTo, connect, createClient, defaultCallBudget, injectDelay, registration, startGrpcServer } from "../../shared/grpc/index.js";
import { listenable } from "../../shared/config/index.js";
import { createLogger } from "../../shared/logging/index.js";
import { ProcessMetrics, serviceHealth, startServiceAdmin, startTracing } from "../../shared/observability/index.js";
import { configOrExit, runMain } from "../../shared/process/index.js";
import { PRINCIPAL_METADATA_KEY, serviceAuth, type Principal } from "../../shared/security/index.js";
import { claimSoleWriter, openDatabase, startBackgroundCheckpoints } from "../../shared/sqlite/index.js";
import { inventoryConfig } from "./config.js";
import { inventoryHandlers } from "./handlers/index.js";
import { orderEventHandling } from "./order-events.js";
import { inventoryMigrations } from "./schema.js";
import { ReservationExpiry, orderFates } from "./reservation-expiry.js";
import { InventoryStore } from "./store.js";

const config = await configOrExit("inventory", (env) => listenable(inventoryConfig(env)));
const logger = createLogger("inventory", config.logLevel);
logGrpcLibraryTo(logger);

runMain(logger, async (fatal) => {
  const tracing = await startTracing({ service: "inventory", logger, otlpEndpoint: config.otlpEndpoint, scheduleDelayMs: config.spanExportDelayMs });
  const metrics = new ProcessMetrics("inventory");
  const writer = claimSoleWriter(config.dbFile, "inventory");
  const db = openDatabase({ file: config.dbFile, migrations: inventoryMigrations, synchronous: config.synchronous });
  const checkpoints = await startBackgroundCheckpoints(db, logger);
  const outbox = new Outbox(db);
  const store = new InventoryStore(db, outbox, Date.now, metrics.transactions);
  const events = startEventRuntime({
    servers: config.natsUrl,
    natsAuth: config.natsAuth,
    streamMaxEvents: config.streamMaxEvents,
    streamReplicas: config.streamReplicas,
    name: "inventory",
    logger,
    db,
    outbox,
    publishesTo: ["inventory"],
    consumers: [
      {
        stream: streams.orders.name,
        durable: consumerNames.inventoryOrderEvents,
        filterSubject: "orderly.orders.>",
        ...orderEventHandling(store, outbox),
      },
    ],
    // A second inventory service (with a database of its own) ends, rather than take some of the events.
    claim: { ...soleServiceClaim("inventory", consumerNames.inventoryOrderEvents), lost: fatal },
    maxDeliveries: config.maxDeliveries,
    retryDelayMs: config.retryDelayMs,
    ackWaitMs: config.ackWaitMs,
    transactions: metrics.transactions,
  });
  const auth = serviceAuth(config.security);
  // The inventory asks the order service about old reservations on its own behalf, as the "service" role.
  const self: Principal = { subject: "service:inventory", customerId: undefined, roles: ["service"] };
  const orderConnection = connect(config.orderAddress, {
    tls: config.security.tls,
    callMetadata: () => ({ [PRINCIPAL_METADATA_KEY]: auth.links.sign(self) }),
  });
  const fates = orderFates(createClient(OrderService, orderConnection));
  const expiry = new ReservationExpiry(store, fates, logger, config.reservationTtlMs, config.reservationSweepMs);
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
    interceptors: config.faultDelay.ms > 0 ? [injectDelay(config.faultDelay.ms, config.faultDelay.methods)] : [],
    health,
    budget: { ...defaultCallBudget, defaultMs: config.defaultBudgetMs },
    services: [registration(InventoryService, inventoryHandlers(store, fates))],
  });
  const admin = await startServiceAdmin({ name: "inventory", host: config.host, port: config.adminPort, portSetting: config.portSettings.admin, allowedHosts: config.adminHosts, metrics, health, logger, events });
  logger.info({ port: server.port, adminPort: admin.port, db: config.dbFile, nats: config.natsUrl, order: config.orderAddress }, "listening");
  return {
    async close() {
      ready = false;
      // The expiry sweep stops while the server drains: a sweep in flight ends within its own budget, so both fit runMain's grace.
      await Promise.all([server.close(), expiry.close()]);
      // The admin port (readiness, metrics) closes before the database its metrics read, so no new scrape reaches a closed one.
      await admin.close();
      orderConnection.close();
      await events.close();
      closeHealth();
      await checkpoints.close();
      db.close();
      writer.release();
      await tracing.shutdown();
    },
  };
});
