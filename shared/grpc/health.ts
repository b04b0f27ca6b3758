import { HealthCheckResponse_ServingStatus, Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { OrderlyError } from "../errors/index.js";
import { registration, type ServiceRegistration } from "./server.js";

/** Serving status of grpc.health.v1. */
export const ServingStatus = HealthCheckResponse_ServingStatus;

/**
 * The grpc.health.v1 Health service for a server: "" and each named service
 * report SERVING while `isReady()` holds, NOT_SERVING otherwise.
 */
export function healthService(serviceNames: readonly string[], isReady: () => boolean): ServiceRegistration {
  return registration(Health, {
    check(request) {
      if (request.service !== "" && !serviceNames.includes(request.service)) {
        throw new OrderlyError("ROUTE_NOT_FOUND", `unknown service "${request.service}"`);
      }
      return { status: isReady() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING };
    },
  });
}
