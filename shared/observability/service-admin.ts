import type { EventRuntime } from "../events/index.js";
import type { HealthState } from "../grpc/index.js";
import type { Logger } from "../logging/index.js";
import type { DependencyPolicy } from "../resilience/index.js";
import { startAdminServer, type AdminServer } from "./admin-server.js";
import { EventLoopLag } from "./event-loop-lag.js";
import type { ProcessMetrics } from "./metrics.js";
import { RequestWindow } from "./request-window.js";
import { statusReporter } from "./status-reporter.js";

/** gRPC codes that mean the server failed (not the caller's request). */
const serverErrorCodes = new Set(["UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"]);

/** What a gRPC service exposes on its admin port. */
export interface ServiceAdminOptions {
  name: string;
  host: string;
  port: number;
  /** The variable that set the port, for the message when it cannot be listened on. */
  portSetting: string;
  metrics: ProcessMetrics;
  health: HealthState;
  logger: Logger;
  policies?: readonly DependencyPolicy[];
  events?: EventRuntime;
  /** Host names answered besides addresses, localhost and this machine's (ORDERLY_ADMIN_HOSTS). */
  allowedHosts: readonly string[];
}

/**
 * Starts a gRPC service's admin server: registers the metrics of its
 * dependencies, events and health, and serves /metrics, /healthz and
 * /status.json (per-RPC rate and p99 over a sliding window).
 */
export async function startServiceAdmin(options: ServiceAdminOptions): Promise<AdminServer> {
  const { metrics, health } = options;
  metrics.watchHealth(health).watchDependencies(options.policies ?? []);
  if (options.events) metrics.watchEvents(options.events);
  const lag = new EventLoopLag();
  const requests = new RequestWindow(metrics.rpcRequests, metrics.rpcDuration, "method", "code", (code) => serverErrorCodes.has(code));
  const server = await startAdminServer({
    host: options.host,
    port: options.port,
    portSetting: options.portSetting,
    registry: metrics.registry,
    health,
    logger: options.logger,
    allowedHosts: options.allowedHosts,
    status: statusReporter({ name: options.name, health, requests, lag, policies: options.policies, events: options.events }),
  });
  return {
    port: server.port,
    async close() {
      await server.close();
      lag.close();
    },
  };
}
