import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { Outbox, startEventRuntime, streams } from "../../shared/events/index.js";
import { healthService, injectDelay, registration, startGrpcServer } from "../../shared/grpc/index.js";
import { createLogger } from "../../shared/logging/index.js";
import { runMain } from "../../shared/process/index.js";
import { serviceAuth } from "../../shared/security/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { inventoryConfig } from "./config.js";
import { inventoryHandlers } from "./handlers/index.js";
import { handleOrderEvents } from "./order-events.js";
import { inventoryMigrations } from "./schema.js";
import { ReservationExpiry } from "./reservation-expiry.js";
import { InventoryStore } from "./store.js";

const config = inventoryConfig(process.env);
const logger = createLogger("inventory", config.logLevel);

runMain(logger, async () => {
  const db = openDatabase({ file: config.dbFile, migrations: inventoryMigrations, synchronous: config.synchronous });
  const outbox = new Outbox(db);
  const store = new InventoryStore(db, outbox);
  const events = startEventRuntime({
    servers: config.natsUrl,
    natsAuth: config.natsAuth,
    name: "inventory",
    logger,
    db,
    outbox,
    consumers: [
      { stream: streams.orders.name, durable: "inventory-order-events", filterSubject: "orderly.orders.>", handle: handleOrderEvents(store, outbox) },
    ],
    maxDeliveries: config.maxDeliveries,
    retryDelayMs: config.retryDelayMs,
    ackWaitMs: config.ackWaitMs,
  });
  const expiry = new ReservationExpiry(store, logger, config.reservationTtlMs, config.reservationSweepMs);
  let ready = true;
  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    auth: serviceAuth(config.security),
    tls: config.security.tls,
    logger,
    interceptors: config.faultDelay.ms > 0 ? [injectDelay(config.faultDelay.ms, config.faultDelay.methods)] : [],
    services: [
      registration(InventoryService, inventoryHandlers(store)),
      healthService([InventoryService.typeName], () => ready && db.open),
    ],
  });
  logger.info({ port: server.port, db: config.dbFile, nats: config.natsUrl }, "listening");
  return {
    async close() {
      ready = false;
      await server.close();
      expiry.close();
      await events.close();
      db.close();
    },
  };
});
