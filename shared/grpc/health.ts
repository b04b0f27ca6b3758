import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckRequest,
} from "../../proto/gen/grpc/health/v1/health_pb.js";
import { OrderlyError } from "../errors/index.js";
import { grpcServiceDefinition, toServiceError, undecodable, type StreamingRegistration } from "./server.js";

/** Serving status of grpc.health.v1. */
export const ServingStatus = HealthCheckResponse_ServingStatus;

/** The named checks a process's readiness is made of (e.g. database open, NATS connected). */
export type HealthChecks = Readonly<Record<string, () => boolean>>;

/** How a HealthState reads its checks. */
export interface HealthStateOptions {
  /**
   * Checks that, failing, leave the process serving, degraded: reported
   * (the status page, /healthz, orderly_ready) but not taking it out of
   * service. NATS is one: writes go on while it is down (the outbox holds
   * their events), and every process shares it, so were it required one
   * NATS outage would make every instance unready at once.
   */
  degrading?: readonly string[];
  /** How often watchers' checks are evaluated (ms). */
  pollMs?: number;
}

/**
 * A process's readiness: SERVING while every check holds but the degrading
 * ones. Watchers hear of each change; the checks are evaluated every
 * `pollMs` while any watcher is listening (and on every read), so a closing
 * database shows within that time.
 */
export class HealthState {
  private readonly listeners = new Set<(serving: boolean) => void>();
  private timer: NodeJS.Timeout | undefined;
  private last: boolean | undefined;
  private readonly required: (() => boolean)[];
  private readonly degrading: ReadonlySet<string>;
  private readonly pollMs: number;

  constructor(
    private readonly checks: HealthChecks,
    options: HealthStateOptions = {},
  ) {
    const degrading = (this.degrading = new Set(options.degrading ?? []));
    this.required = Object.entries(checks).flatMap(([name, check]) => (degrading.has(name) ? [] : [check]));
    this.pollMs = options.pollMs ?? 500;
  }

  /** Each check's result now. */
  report(): Record<string, boolean> {
    const report: Record<string, boolean> = {};
    for (const [name, check] of Object.entries(this.checks)) report[name] = check();
    return report;
  }

  /** Whether every required check holds now (a degrading one failing leaves it serving). */
  serving(): boolean {
    for (const check of this.required) if (!check()) return false;
    return true;
  }

  /** "ok" while every check holds, "degraded" while only degrading ones fail, "not ready" otherwise: now, or in `report` (one reading of them). */
  verdict(report: Record<string, boolean> = this.report()): "ok" | "degraded" | "not ready" {
    const failing = Object.entries(report).flatMap(([name, holds]) => (holds ? [] : [name]));
    if (failing.some((name) => !this.degrading.has(name))) return "not ready";
    return failing.length === 0 ? "ok" : "degraded";
  }

  /** Calls `listener` with the current state, then on every change; returns the unsubscribe function. */
  watch(listener: (serving: boolean) => void): () => void {
    const serving = this.serving();
    if (this.listeners.size === 0) this.last = serving;
    this.listeners.add(listener);
    listener(serving);
    this.timer ??= setInterval(() => this.poll(), this.pollMs).unref();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopPolling();
    };
  }

  /** Re-evaluates now (e.g. right after a dependency changed state) and tells watchers of a change. */
  poll(): void {
    const serving = this.serving();
    if (serving === this.last) return;
    this.last = serving;
    for (const listener of this.listeners) listener(serving);
  }

  private stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.last = undefined;
  }
}

function statusFor(request: HealthCheckRequest, serviceNames: readonly string[], serving: boolean) {
  if (request.service !== "" && !serviceNames.includes(request.service)) return undefined;
  return create(HealthCheckResponseSchema, { status: serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING });
}

/**
 * grpc.health.v1.Health for a server: "" and each named service report
 * SERVING while the state's required checks hold, NOT_SERVING otherwise; Check of an
 * unknown service is NOT_FOUND, and Watch streams each change (and
 * SERVICE_UNKNOWN for an unknown service, as the protocol says).
 */
export function healthService(serviceNames: readonly string[], state: HealthState): StreamingRegistration {
  const names = [...serviceNames, Health.typeName];
  const watching = new Set<() => void>();
  const definition = grpcServiceDefinition(Health);
  const implementation: grpc.UntypedServiceImplementation = {
    Check(call: grpc.ServerUnaryCall<HealthCheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const refusal = undecodable(call.request);
      if (refusal) return callback(toServiceError(refusal));
      const response = statusFor(call.request, names, state.serving());
      if (response) callback(null, response);
      else callback(toServiceError(new OrderlyError("ROUTE_NOT_FOUND", `unknown service "${call.request.service}"`)));
    },
    Watch(call: grpc.ServerWritableStream<HealthCheckRequest, unknown>) {
      const refusal = undecodable(call.request);
      if (refusal) return void call.emit("error", toServiceError(refusal));
      // An unknown service's stream stays open (it may become known, says the protocol) and ends with the server like the others.
      const known = call.request.service === "" || names.includes(call.request.service);
      if (!known) call.write(create(HealthCheckResponseSchema, { status: ServingStatus.SERVICE_UNKNOWN }));
      const stop = known ? state.watch((serving) => call.write(statusFor(call.request, names, serving))) : () => {};
      const end = () => {
        stop();
        watching.delete(serverClosing);
      };
      const serverClosing = () => {
        // The server is closing: say so (of a service it serves), and end the stream so the shutdown need not wait for it.
        if (known) call.write(create(HealthCheckResponseSchema, { status: ServingStatus.NOT_SERVING }));
        call.end();
        end();
      };
      watching.add(serverClosing);
      call.on("cancelled", end);
      call.on("close", end);
      call.on("error", end);
    },
  };
  return {
    name: Health.typeName,
    definition,
    implementation,
    close: () => {
      for (const close of [...watching]) close();
    },
  };
}
