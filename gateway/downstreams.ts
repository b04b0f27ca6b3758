import type { DescService, Message } from "@bufbuild/protobuf";
import { Health, HealthCheckResponse_ServingStatus } from "../proto/gen/grpc/health/v1/health_pb.js";
import { OrderlyError } from "../shared/errors/index.js";
import { callUnary, connect, type CallOptions, type Connection } from "../shared/grpc/index.js";
import { callWithPolicy, connectionPolicy, type DependencyPolicy, type DependencyPolicyOptions } from "../shared/resilience/index.js";
import type { Logger } from "../shared/logging/index.js";
import type { TlsFiles } from "../shared/security/index.js";
import type { Route } from "./routes/index.js";

/** A service the gateway fronts: where it is, and the policy of calls to it. */
export interface Downstream {
  name: string;
  service: DescService;
  connection: Connection;
  policy: DependencyPolicy;
}

/** Connects to each service at its address, with one policy per service, whose open breaker probes the service's health check, at once when the connection is ready again. */
export function connectDownstreams(
  targets: readonly { name: string; service: DescService; address: string }[],
  policy: Omit<DependencyPolicyOptions, "name"> & { logger?: Logger },
  tls?: TlsFiles,
): Downstream[] {
  return targets.map((t) => {
    const connection = connect(t.address, { tls });
    return { name: t.name, service: t.service, connection, policy: connectionPolicy(connection, { ...policy, name: t.name }) };
  });
}

/** Calls a route's RPC on the downstream that serves its service. */
export function routeCaller(downstreams: readonly Downstream[]) {
  const byService = new Map(downstreams.map((d) => [d.service.typeName, d]));
  return (route: Route, request: Message, options: CallOptions): Promise<Message> => {
    const downstream = byService.get(route.service.typeName);
    if (downstream === undefined) throw new OrderlyError("SERVICE_UNAVAILABLE", `no downstream serves ${route.service.typeName}`);
    return callWithPolicy(downstream.policy, downstream.connection, route.method, request as never, options);
  };
}

/**
 * Asks every downstream's grpc.health.v1 whether it is SERVING (each within
 * timeoutMs). Probes asked for while one is in flight get its answer: /readyz
 * is answered without authentication or a rate limit, so a burst of it costs
 * the services one round of health checks, not one each.
 */
export function readinessProbe(downstreams: readonly Downstream[], timeoutMs = 1000) {
  const probe = async (): Promise<{ ready: boolean; services: Record<string, string> }> => {
    const results = await Promise.all(
      downstreams.map(async (d) => {
        try {
          const response = await callUnary(d.connection, Health.method.check, { service: d.service.typeName }, { deadline: Date.now() + timeoutMs });
          return [d.name, HealthCheckResponse_ServingStatus[response.status]] as const;
        } catch {
          return [d.name, "UNREACHABLE"] as const;
        }
      }),
    );
    return { ready: results.every(([, status]) => status === "SERVING"), services: Object.fromEntries(results) };
  };
  let inFlight: ReturnType<typeof probe> | undefined;
  return () => (inFlight ??= probe().finally(() => (inFlight = undefined)));
}
