import { QueryService } from "../../proto/gen/orderly/query/v1/query_pb.js";
import { queryConsumerClaim, startEventRuntime } from "../../shared/events/index.js";
import { logGrpcLibraryTo, defaultCallBudget, registration, startGrpcServer } from "../../shared/grpc/index.js";
import { listenable } from "../../shared/config/index.js";
import { createLogger } from "../../shared/logging/index.js";
import { ProcessMetrics, serviceHealth, startServiceAdmin, startTracing } from "../../shared/observability/index.js";
import { configOrExit, runMain } from "../../shared/process/index.js";
import { serviceAuth } from "../../shared/security/index.js";
import { claimSoleWriter, openDatabase, startBackgroundCheckpoints } from "../../shared/sqlite/index.js";
import { queryConfig } from "./config.js";
import { queryHandlers } from "./handlers/index.js";
import { projectionConsumers } from "./projection-consumers.js";
import { Projector } from "./projector.js";
import { ReadStore } from "./read-store.js";
import { queryMigrations } from "./schema.js";
import { ViewChanges } from "./view-changes.js";

const config = await configOrExit("query", (env) => listenable(queryConfig(env)));
const logger = createLogger("query", config.logLevel);
logGrpcLibraryTo(logger);

runMain(logger, async (fatal) => {
  const tracing = await startTracing({ service: "query", logger, otlpEndpoint: config.otlpEndpoint, scheduleDelayMs: config.spanExportDelayMs });
  const metrics = new ProcessMetrics("query");
  // The read side serves scattered reads over every order ever stored: a larger page cache and a memory map keep them off read().
  const writer = claimSoleWriter(config.dbFile, "query");
  const db = openDatabase({ file: config.dbFile, migrations: queryMigrations, synchronous: config.synchronous, cacheMiB: 64, mmapMiB: 1024 });
  const checkpoints = await startBackgroundCheckpoints(db, logger);
  const changes = new ViewChanges(config.maxWaits);
  const events = startEventRuntime({
    servers: config.natsUrl,
    natsAuth: config.natsAuth,
    // For a stream it makes missing: it publishes to none, so it changes none.
    streamMaxEvents: config.streamMaxEvents,
    streamReplicas: config.streamReplicas,
    name: "query",
    logger,
    db,
    consumers: projectionConsumers(config.consumerName, new Projector(db, logger), changes),
    // Another copy running these consumers ends this one, as another process on its database file does.
    claim: { ...queryConsumerClaim(config.consumerName), lost: fatal },
    maxDeliveries: config.maxDeliveries,
    retryDelayMs: config.retryDelayMs,
    ackWaitMs: config.ackWaitMs,
    transactions: metrics.transactions,
  });
  let ready = true;
  const { health, close: closeHealth } = serviceHealth(logger, { serving: () => ready, database: () => db.open, events });
  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    portSetting: config.portSettings.grpc,
    auth: serviceAuth(config.security),
    tls: config.security.tls,
    logger,
    observeCalls: metrics.observeCalls,
    health,
    budget: { ...defaultCallBudget, defaultMs: config.defaultBudgetMs },
    services: [
      registration(QueryService, queryHandlers({ store: new ReadStore(db), changes })),
    ],
  });
  const admin = await startServiceAdmin({ name: "query", host: config.host, port: config.adminPort, portSetting: config.portSettings.admin, allowedHosts: config.adminHosts, metrics, health, logger, events });
  logger.info({ port: server.port, adminPort: admin.port, db: config.dbFile, nats: config.natsUrl }, "listening");
  return {
    async close() {
      ready = false;
      await server.close();
      // The admin port (readiness, metrics) closes before the database its metrics read, so no new scrape reaches a closed one.
      await admin.close();
      await events.close();
      closeHealth();
      await checkpoints.close();
      db.close();
      writer.release();
      await tracing.shutdown();
    },
  };
});
